package postfixq

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// The fixture is a real Postfix 3.7 queue (see
// testdata/queues/postfix-incident/README.md). It is extracted once per test
// binary, with numeric owners and modes, into a temporary directory.

const fixtureDir = "../testdata/queues/postfix-incident"

var (
	fixtureOnce sync.Once
	fixtureTmp  string
	fixtureErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureTmp != "" {
		os.RemoveAll(fixtureTmp)
	}
	os.Exit(code)
}

// fixtureRoot returns the extracted queue_directory. Tests must not modify
// it; tests that do take a private copy with copyFixture.
func fixtureRoot(t testing.TB) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureTmp, fixtureErr = os.MkdirTemp("", "postfixq-fixture-")
		if fixtureErr != nil {
			return
		}
		fixtureErr = testkit.Untar(filepath.Join(fixtureDir, "queue.tar.gz"), fixtureTmp)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return filepath.Join(fixtureTmp, testkit.PostfixRoot)
}

// copyFixture extracts a private copy of the fixture for tests that change
// it, owned by this machine's postfix user (the real postsuper acts on it).
func copyFixture(t testing.TB) string {
	t.Helper()
	root := filepath.Join(testkit.Extract(t, filepath.Join(fixtureDir, "queue.tar.gz")), testkit.PostfixRoot)
	testkit.AdoptPostfixOwners(t, root)
	return root
}

type truthRecipient struct {
	Address           string  `json:"address"`
	State             string  `json:"state"`
	Offset            int64   `json:"offset"`
	OriginalRecipient *string `json:"original_recipient"`
	DSNOrigRcpt       *string `json:"dsn_orig_rcpt"`
}

type truthLogReason struct {
	Log       string `json:"log"`
	Recipient string `json:"recipient"`
	Status    string `json:"status"`
	Action    string `json:"action"`
	Reason    string `json:"reason"`
}

type truthMessage struct {
	Queue              string              `json:"queue"`
	QueueID            string              `json:"queue_id"`
	Path               string              `json:"path"`
	Mode               string              `json:"mode"`
	UID                int                 `json:"uid"`
	GID                int                 `json:"gid"`
	FileSize           int64               `json:"file_size"`
	Mtime              int64               `json:"mtime"`
	Kind               string              `json:"kind"`
	Sender             string              `json:"sender"`
	Recipients         []truthRecipient    `json:"recipients"`
	SASLUsername       *string             `json:"sasl_username"`
	SASLMethod         *string             `json:"sasl_method"`
	ClientAddress      *string             `json:"client_address"`
	LogClientAddress   *string             `json:"log_client_address"`
	ClientName         *string             `json:"client_name"`
	HeloName           *string             `json:"helo_name"`
	ArrivalTime        int64               `json:"arrival_time"`
	ArrivalTimeUsec    int64               `json:"arrival_time_usec"`
	SizeRecord         []int64             `json:"size_record"`
	MessageSize        *int64              `json:"message_size"`
	Attributes         map[string]string   `json:"attributes"`
	Headers            map[string][]string `json:"headers"`
	SubjectDecoded     *string             `json:"subject_decoded"`
	FromDecoded        *string             `json:"from_decoded"`
	HeaderCount        int                 `json:"header_count"`
	ContentLines       int                 `json:"content_lines"`
	RecordTypesLogical map[string]int      `json:"record_types_logical"`
	HasNonzeroPointer  bool                `json:"has_nonzero_pointer"`
	HasDeferLog        bool                `json:"has_defer_log"`
	HasBounceLog       bool                `json:"has_bounce_log"`
	LogReasons         []truthLogReason    `json:"log_reasons"`
}

type truthFile struct {
	Counts struct {
		Total int `json:"total"`
	} `json:"counts"`
	Messages []truthMessage `json:"messages"`
}

func loadTruth(t testing.TB) *truthFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tf truthFile
	if err := json.Unmarshal(data, &tf); err != nil {
		t.Fatal(err)
	}
	if len(tf.Messages) == 0 || len(tf.Messages) != tf.Counts.Total {
		t.Fatalf("truth.json: %d messages, counts.total %d", len(tf.Messages), tf.Counts.Total)
	}
	return &tf
}

// pqMessage is one line of the fixture's postqueue -j output.
type pqMessage = postfixtest.QueueEntry

func loadPostqueue(t testing.TB) []pqMessage {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir, "postqueue.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []pqMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m pqMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fixtureFiles returns the relative paths of every queue file in truth.json.
func fixtureFiles(t testing.TB) []string {
	tf := loadTruth(t)
	var out []string
	for _, m := range tf.Messages {
		out = append(out, m.Path)
	}
	return out
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
