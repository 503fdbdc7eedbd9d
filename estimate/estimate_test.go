package estimate

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

func TestWilson(t *testing.T) {
	// p = 0.1 of 100: the textbook Wilson interval [0.0552, 0.1744].
	lo, hi := Wilson(0.1, 100, Z95)
	if math.Abs(lo-0.05523) > 1e-4 || math.Abs(hi-0.17437) > 1e-4 {
		t.Errorf("Wilson(0.1, 100) = [%.5f, %.5f], want [0.05523, 0.17437]", lo, hi)
	}
	// Nothing seen still leaves room above zero; everything seen below one.
	if lo, hi := Wilson(0, 4000, Z95); lo != 0 || hi <= 0 || hi > 0.001 {
		t.Errorf("Wilson(0, 4000) = [%g, %g]", lo, hi)
	}
	if lo, hi := Wilson(1, 4000, Z95); hi != 1 || lo >= 1 || lo < 0.999 {
		t.Errorf("Wilson(1, 4000) = [%g, %g]", lo, hi)
	}
	// The whole population read: no uncertainty left.
	if lo, hi := Wilson(0.3, EffectiveN(50, 50), Z95); lo != 0.3 || hi != 0.3 {
		t.Errorf("whole population: [%g, %g], want [0.3, 0.3]", lo, hi)
	}
	// ±2 points at 95% for p = ½ needs 2401: 4000 of a million is inside.
	lo, hi = Wilson(0.5, EffectiveN(4000, 1e6), Z95)
	if hi-lo > 0.04 || hi-lo < 0.025 {
		t.Errorf("p=½, n=4000 of 1M: width %.4f", hi-lo)
	}
	// The finite-population correction narrows a sample of half the queue.
	lo2, hi2 := Wilson(0.5, EffectiveN(4000, 8000), Z95)
	if hi2-lo2 >= (hi-lo)*0.8 {
		t.Errorf("FPC: width %.4f for 4000 of 8000, %.4f for 4000 of 1M", hi2-lo2, hi-lo)
	}
}

// TestReservoirUniform: every position of the stream is kept equally
// often; a reservoir that kept the first names, or favoured the last ones,
// fails.
func TestReservoirUniform(t *testing.T) {
	const n, size, rounds = 200, 20, 5000
	rng := rand.New(rand.NewPCG(1, 2))
	hits := make([]int, n)
	for range rounds {
		r := NewReservoir[int](size, rng)
		for i := range n {
			r.Add(i)
		}
		if r.Seen() != n || len(r.Items()) != size {
			t.Fatalf("seen %d kept %d", r.Seen(), len(r.Items()))
		}
		for _, x := range r.Items() {
			hits[x]++
		}
	}
	// Expected 500 each; chi-square with 199 degrees of freedom stays
	// well under 300 (p ≈ 1e-5) for a uniform draw.
	want := float64(rounds*size) / n
	var chi2 float64
	var first, last int
	for i, h := range hits {
		d := float64(h) - want
		chi2 += d * d / want
		if i < n/4 {
			first += h
		}
		if i >= 3*n/4 {
			last += h
		}
	}
	if chi2 > 300 {
		t.Errorf("chi-square %.1f over %d positions: not uniform (first quarter %d, last quarter %d)", chi2, n, first, last)
	}
	// A stream shorter than the reservoir is kept whole.
	r := NewReservoir[int](size, rng)
	for i := range 7 {
		r.Add(i)
	}
	if len(r.Items()) != 7 {
		t.Errorf("kept %d of 7", len(r.Items()))
	}
}

func TestNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.77":             "192.0.2.0/24",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"IPv6:2001:db8::1":       "2001:db8::/64",
		"::ffff:198.51.100.9":    "198.51.100.0/24",
		"unknown":                "unknown",
		"fe80::1%eth0":           "fe80::/64",
		"203.0.113.255":          "203.0.113.0/24",
		"2001:db8:ffff:ffff::99": "2001:db8:ffff:ffff::/64",
	} {
		if got := Network(in); got != want {
			t.Errorf("Network(%q) = %q, want %q", in, got, want)
		}
	}
}

// exactTally counts a whole queue as Sample's tally does, through the
// same engine.
func exactTally(t *testing.T, src queue.Source) *tally {
	t.Helper()
	m, err := filter.Compile(filter.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	tl := newTally()
	if err := filter.Scan(context.Background(), src, m, filter.Options{}, func(r filter.Result) error { tl.add(r.Msg); return nil }); err != nil {
		t.Fatal(err)
	}
	return tl
}

// TestSampleWholeQueueIsExact: on the real-MTA fixtures, a sample at least
// as large as the queue gives the exact counts with zero-width intervals;
// a smaller one, seeded, has the exact share inside the interval of every
// top SASL user and is scaled to the queue.
func TestSampleWholeQueueIsExact(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) queue.Source
	}{
		{"postfix", func(t *testing.T) queue.Source {
			dir := testkit.Extract(t, "../testdata/queues/postfix-incident/queue.tar.gz")
			s, err := postfixq.Open(filepath.Join(dir, "postfix-incident-a"), postfixq.Options{SkipLogs: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"qmail", func(t *testing.T) queue.Source {
			dir := testkit.Extract(t, "../testdata/queues/qmail-incident/queue.tar.gz")
			q, err := qmailq.Open(filepath.Join(dir, "queue"))
			if err != nil {
				t.Fatal(err)
			}
			return q
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.open(t)
			ex := exactTally(t, src)
			m, _ := filter.Compile(filter.Spec{})
			est, err := Sample(context.Background(), src, m, Options{Size: 100000, Seed: 1, SeedSet: true})
			if err != nil {
				t.Fatal(err)
			}
			if !est.Exact || est.Population != ex.messages || est.Matched != ex.messages || est.Messages != ex.messages {
				t.Fatalf("whole queue: %+v, want %d messages exact", est, ex.messages)
			}
			for _, c := range []struct {
				name string
				got  []Share
				want map[string]int64
			}{{"sasl", est.SASLUsers, ex.sasl}, {"senders", est.Senders, ex.senders}, {"networks", est.ClientNetworks, ex.networks}, {"domains", est.RecipientDomains, ex.domains}} {
				if len(c.got) != len(c.want) || len(c.got) == 0 {
					t.Errorf("%s: %d keys, want %d", c.name, len(c.got), len(c.want))
				}
				for _, s := range c.got {
					if s.Count != c.want[s.Key] || s.SampleCount != c.want[s.Key] || s.CILow != s.Share || s.CIHigh != s.Share {
						t.Errorf("%s %q: %+v, want count %d and a zero-width interval", c.name, s.Key, s, c.want[s.Key])
					}
				}
			}

			est, err = Sample(context.Background(), src, m, Options{Size: 120, Seed: 42, SeedSet: true})
			if err != nil {
				t.Fatal(err)
			}
			if est.Exact || est.SampleSize != 120 || est.Population != ex.messages {
				t.Fatalf("sample of 120: %+v", est)
			}
			// Scaled: the estimated count is the sample count times the
			// population over the sample.
			top := est.SASLUsers[0]
			if want := int64(math.Round(float64(top.SampleCount) * float64(ex.messages) / 120)); top.Count != want {
				t.Errorf("count %d, want %d (scaled)", top.Count, want)
			}
			// Which messages are drawn follows the listing order, which
			// differs from one file system to the next (ext4 hashes names
			// with a seed of its own): a 95% interval would miss the truth
			// on 1 draw in 20. Each interval must be the 95% Wilson one,
			// and the truth within 3.89 standard errors (1 in 10,000).
			neff := EffectiveN(120, float64(ex.messages))
			for _, s := range est.SASLUsers[:min(3, len(est.SASLUsers))] {
				p := float64(ex.sasl[s.Key]) / float64(ex.messages)
				if lo, hi := Wilson(s.Share, neff, Z95); math.Abs(lo-s.CILow) > 1e-12 || math.Abs(hi-s.CIHigh) > 1e-12 {
					t.Errorf("SASL user %s: interval [%.4f, %.4f], want [%.4f, %.4f]", s.Key, s.CILow, s.CIHigh, lo, hi)
				}
				if lo, hi := Wilson(s.Share, neff, 3.89); p < lo || p > hi {
					t.Errorf("SASL user %s: exact share %.3f outside [%.3f, %.3f] (3.89 SE)", s.Key, p, lo, hi)
				}
			}
		})
	}
}
