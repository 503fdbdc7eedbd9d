package estimate

import "math"

// Z95 is the standard normal quantile of a two-sided 95% interval.
const Z95 = 1.959963984540054

// Wilson is the Wilson score interval of a proportion p observed in an
// effective sample of neff draws, at the normal quantile z. Unlike the
// textbook p ± z·√(p(1−p)/n) it stays inside [0, 1] and keeps a width when
// p is 0 or 1 (a user seen in none of 4,000 sampled messages may still have
// a few hundred of a million). neff = +Inf gives the zero-width interval
// [p, p] (the whole population was read).
func Wilson(p, neff, z float64) (lo, hi float64) {
	if math.IsInf(neff, 1) {
		return p, p
	}
	if neff <= 0 || math.IsNaN(neff) {
		return 0, 1
	}
	z2 := z * z
	den := 1 + z2/neff
	center := (p + z2/(2*neff)) / den
	half := z / den * math.Sqrt(p*(1-p)/neff+z2/(4*neff*neff))
	lo, hi = max(center-half, 0), min(center+half, 1)
	// Rounding must not put the observed share outside its own interval.
	return min(lo, p), max(hi, p)
}

// EffectiveN is the sample size m drawn without replacement from a
// population of size pop, expressed as the size of a with-replacement
// sample of the same variance: m·(pop−1)/(pop−m), the finite-population
// correction folded into n. m ≥ pop (the whole population) gives +Inf.
func EffectiveN(m, pop float64) float64 {
	if m >= pop {
		return math.Inf(1)
	}
	if pop <= 1 {
		return m
	}
	return m * (pop - 1) / (pop - m)
}

// ratioNeff is the effective sample size of a ratio estimate r = Σy/Σx
// over m sampled clusters (messages, whose recipients are the units; x_i
// the message's pending recipients, y_i those at the domain): Kish's
// design effect applied to the linearised variance of the ratio estimator
// (Cochran, Sampling Techniques, §6.3), with the finite-population
// correction f = m/pop. The Wilson interval on that n covers recipients
// that come in clusters, which a plain binomial n would not.
func ratioNeff(ys, xs []float64, r, pop float64) float64 {
	m := float64(len(xs))
	if m >= pop {
		return math.Inf(1)
	}
	if m < 2 {
		return m
	}
	var sx, ss float64
	for i := range xs {
		sx += xs[i]
		d := ys[i] - r*xs[i]
		ss += d * d
	}
	xbar := sx / m
	if xbar == 0 {
		return 0
	}
	f := m / pop
	v := (1 - f) / (m * xbar * xbar) * ss / (m - 1)
	pq := r * (1 - r)
	if v <= 0 || pq <= 0 {
		// No spread seen (every message alike, or r is 0 or 1): the
		// recipients carry no more information than independent ones.
		return EffectiveN(sx, pop*xbar)
	}
	return pq / v
}
