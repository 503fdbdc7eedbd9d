package postfixq

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is the part of a Postfix instance's main.cf that a queue reader
// needs. Defaults are Postfix's own (global/mail_params.h).
type Config struct {
	QueueDirectory string   // queue_directory (default /var/spool/postfix)
	HashQueueNames []string // hash_queue_names (default deferred, defer)
	HashQueueDepth int      // hash_queue_depth (default 1)
	LongQueueIDs   bool     // enable_long_queue_ids (default no)
}

// DefaultConfig returns Postfix's defaults.
func DefaultConfig() Config {
	return Config{
		QueueDirectory: "/var/spool/postfix",
		HashQueueNames: []string{"deferred", "defer"},
		HashQueueDepth: 1,
	}
}

// LoadConfig reads DIR/main.cf. It is a minimal parser (util/dict_load.c
// style): "name = value" lines, continuation lines starting with
// white space, # comments, the last definition wins, and $name / ${name}
// references to other main.cf parameters are expanded (a reference to a
// parameter main.cf does not define expands to Postfix's default for the
// parameters above, else to nothing). Unknown parameters are ignored.
func LoadConfig(dir string) (Config, error) {
	f, err := os.Open(filepath.Join(dir, "main.cf"))
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	params, err := ParseMainCF(f)
	if err != nil {
		return Config{}, fmt.Errorf("postfixq: %s/main.cf: %w", dir, err)
	}
	return configFromParams(params)
}

func configFromParams(params map[string]string) (Config, error) {
	c := DefaultConfig()
	defaults := map[string]string{
		"queue_directory":       c.QueueDirectory,
		"hash_queue_names":      "deferred, defer",
		"hash_queue_depth":      "1",
		"enable_long_queue_ids": "no",
	}
	get := func(name string) string {
		v, ok := params[name]
		if !ok {
			v = defaults[name]
		}
		return expand(v, params, defaults, 0)
	}
	c.QueueDirectory = get("queue_directory")
	c.HashQueueNames = strings.FieldsFunc(get("hash_queue_names"), func(r rune) bool {
		return r == ' ' || r == '\t' || r == ',' || r == '\r' || r == '\n'
	})
	d, err := strconv.Atoi(strings.TrimSpace(get("hash_queue_depth")))
	if err != nil || d < 1 || d > 100 {
		return c, fmt.Errorf("postfixq: bad hash_queue_depth %q", get("hash_queue_depth"))
	}
	c.HashQueueDepth = d
	switch strings.ToLower(strings.TrimSpace(get("enable_long_queue_ids"))) {
	case "yes", "true", "1":
		c.LongQueueIDs = true
	}
	return c, nil
}

func expand(v string, params, defaults map[string]string, depth int) string {
	if depth > 20 || !strings.Contains(v, "$") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '$' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		j := i + 1
		var name string
		if v[j] == '{' || v[j] == '(' {
			close := byte('}')
			if v[j] == '(' {
				close = ')'
			}
			k := strings.IndexByte(v[j:], close)
			if k < 0 {
				b.WriteString(v[i:])
				break
			}
			name = v[j+1 : j+k]
			i = j + k
		} else {
			k := j
			for k < len(v) && (v[k] == '_' || v[k] >= 'a' && v[k] <= 'z' || v[k] >= 'A' && v[k] <= 'Z' || v[k] >= '0' && v[k] <= '9') {
				k++
			}
			name = v[j:k]
			i = k - 1
		}
		val, ok := params[name]
		if !ok {
			val = defaults[name]
		}
		b.WriteString(expand(val, params, defaults, depth+1))
	}
	return b.String()
}

// ParseMainCF parses main.cf syntax into name → raw value.
func ParseMainCF(r io.Reader) (map[string]string, error) {
	params := make(map[string]string)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var name string
	var val strings.Builder
	have := false
	flush := func() {
		if have {
			params[name] = strings.TrimSpace(val.String())
		}
		have = false
		val.Reset()
	}
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if have {
				val.WriteByte(' ')
				val.WriteString(trimmed)
			}
			continue
		}
		flush()
		n, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("missing '=' in %q", line)
		}
		name, have = strings.TrimSpace(n), true
		val.WriteString(strings.TrimSpace(v))
	}
	flush()
	return params, sc.Err()
}
