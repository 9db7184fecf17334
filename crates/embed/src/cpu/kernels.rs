//! The element-wise passes of the encoder, fused so each row is read once.
//!
//! Each public function picks at run time between an AVX2+FMA build of its body and a
//! portable one, so the binary runs on any x86-64 (and other) CPU and still uses the vector
//! units where they exist. The bodies are written over fixed 8-wide lanes, a shape LLVM
//! turns into vector instructions; float sums keep 8 partial accumulators because the
//! compiler may not reorder a single running sum.

const LANES: usize = 8;

/// `a * b + c`, fused (one rounding) when the caller was compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Declares `pub fn NAME(args)` that runs `IMPL::<true>` compiled for AVX2+FMA when the CPU
/// has them and `IMPL::<false>` otherwise.
macro_rules! dispatch {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:ident;) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    $imp::<true>($($arg),*)
                }
                if super::has_avx2_fma() {
                    // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
                    return unsafe { fast($($arg),*) };
                }
            }
            $imp::<false>($($arg),*)
        }
    };
}

#[inline(always)]
fn dot_impl<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] = madd::<FMA>(x[l], y[l], acc[l]);
        }
    }
    let mut sum = horizontal_sum(&acc);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum = madd::<FMA>(*x, *y, sum);
    }
    sum
}

#[inline(always)]
fn horizontal_sum(acc: &[f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn sum_impl(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    horizontal_sum(&acc) + chunks.remainder().iter().sum::<f32>()
}

/// `exp(x)` for `x <= 0` to about 2 ulp (Cephes' single-precision polynomial), in a form
/// that vectorises; inputs under -87 give the smallest normal float rather than 0.
#[inline(always)]
fn exp_impl<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so `x - n ln2` keeps its precision.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = madd::<FMA>(x, LOG2E, ROUND) - ROUND;
    let r = madd::<FMA>(n, -LN2_HI, x);
    let r = madd::<FMA>(n, -LN2_LO, r);
    let mut p = 1.987_569_1e-4;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let y = madd::<FMA>(p, r * r, r) + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * scale
}

/// `erf(x)` to a few ulp: the rational approximation Eigen and XLA use for single precision,
/// exact to float precision outside [-4, 4] where erf is ±1.
#[inline(always)]
fn erf_impl<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = madd::<FMA>(x2, p, 2.770_681_4e-8);
    p = madd::<FMA>(x2, p, -2.101_024_1e-6);
    p = madd::<FMA>(x2, p, -5.692_506_4e-5);
    p = madd::<FMA>(x2, p, -7.349_906_3e-4);
    p = madd::<FMA>(x2, p, -2.954_600_1e-3);
    p = madd::<FMA>(x2, p, -1.609_603_3e-2);
    p *= x;
    let mut q = -1.456_607_2e-5;
    q = madd::<FMA>(x2, q, -2.133_740_6e-4);
    q = madd::<FMA>(x2, q, -1.682_827e-3);
    q = madd::<FMA>(x2, q, -7.373_329_2e-3);
    q = madd::<FMA>(x2, q, -1.426_473_9e-2);
    p / q
}

#[inline(always)]
fn gelu_impl<const FMA: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_impl::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn add_bias_impl<const FMA: bool>(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

#[inline(always)]
fn bias_gelu_impl<const FMA: bool>(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            *x = gelu_impl::<FMA>(*x + b);
        }
    }
}

/// One row: `x = LayerNorm(x + y + bias)`, in place.
#[inline(always)]
fn layer_norm_row<const FMA: bool>(
    x: &mut [f32],
    y: &[f32],
    bias: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    for ((x, y), b) in x.iter_mut().zip(y).zip(bias) {
        *x += y + b;
    }
    layer_norm_in_place::<FMA>(x, gamma, beta, eps);
}

#[inline(always)]
fn layer_norm_in_place<const FMA: bool>(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = sum_impl(x) / n;
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let d = c[l] - mean;
            acc[l] = madd::<FMA>(d, d, acc[l]);
        }
    }
    let mut var = horizontal_sum(&acc);
    for v in chunks.remainder() {
        var += (v - mean) * (v - mean);
    }
    let inv_std = 1.0 / (var / n + eps).sqrt();
    for ((v, g), b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = madd::<FMA>((*v - mean) * inv_std, *g, *b);
    }
}

#[inline(always)]
fn residual_layer_norm_impl<const FMA: bool>(
    x: &mut [f32],
    y: &[f32],
    bias: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let width = bias.len();
    for (xr, yr) in x.chunks_exact_mut(width).zip(y.chunks_exact(width)) {
        layer_norm_row::<FMA>(xr, yr, bias, gamma, beta, eps);
    }
}

#[inline(always)]
fn layer_norm_impl<const FMA: bool>(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(gamma.len()) {
        layer_norm_in_place::<FMA>(row, gamma, beta, eps);
    }
}

/// Row by row: `row = softmax(row * scale)`.
#[inline(always)]
fn scaled_softmax_rows_impl<const FMA: bool>(scores: &mut [f32], width: usize, scale: f32) {
    for row in scores.chunks_exact_mut(width) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for s in row.iter_mut() {
            *s = exp_impl::<FMA>((*s - max) * scale);
        }
        let inv = 1.0 / sum_impl(row);
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}

/// Row by row: `row = softmax(row * scale + bias)`, where row `i`'s bias for column `j` is
/// `distance_bias[j - i + width - 1]`.
#[inline(always)]
fn scaled_biased_softmax_rows_impl<const FMA: bool>(
    scores: &mut [f32],
    width: usize,
    scale: f32,
    distance_bias: &[f32],
) {
    for (i, row) in scores.chunks_exact_mut(width).enumerate() {
        let bias = &distance_bias[width - 1 - i..][..width];
        let mut max = f32::NEG_INFINITY;
        for (s, b) in row.iter_mut().zip(bias) {
            *s = *s * scale + b;
            max = max.max(*s);
        }
        for s in row.iter_mut() {
            *s = exp_impl::<FMA>(*s - max);
        }
        let inv = 1.0 / sum_impl(row);
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}

/// Mean of `rows` (each `out.len()` wide) into `out`, then scaled to unit L2 norm as
/// sentence-transformers' `Normalize` does (`x / max(|x|, 1e-12)`).
#[inline(always)]
fn mean_pool_normalize_impl<const FMA: bool>(rows: &[f32], out: &mut [f32]) {
    let width = out.len();
    out.fill(0.0);
    let count = rows.len() / width;
    for row in rows.chunks_exact(width) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    let inv_count = 1.0 / count.max(1) as f32;
    for o in out.iter_mut() {
        *o *= inv_count;
    }
    let norm = dot_impl::<FMA>(out, out).sqrt().max(1e-12);
    for o in out.iter_mut() {
        *o /= norm;
    }
}

dispatch! {
    /// `rows[r][c] += bias[c]` for every row of `bias.len()` values.
    pub fn add_bias(rows: &mut [f32], bias: &[f32]) => add_bias_impl;
}
dispatch! {
    /// `rows[r][c] = gelu(rows[r][c] + bias[c])`, GELU with the exact erf as BERT uses it.
    pub fn bias_gelu(rows: &mut [f32], bias: &[f32]) => bias_gelu_impl;
}
dispatch! {
    /// Row by row: `x = LayerNorm(x + y + bias) * gamma + beta`: the bias of the projection
    /// that made `y`, the residual connection and the norm in one pass.
    pub fn residual_layer_norm(x: &mut [f32], y: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) => residual_layer_norm_impl;
}
dispatch! {
    /// Row by row: `x = LayerNorm(x) * gamma + beta`.
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => layer_norm_impl;
}
dispatch! {
    /// Row by row (`width` floats each): `row = softmax(row * scale)`.
    pub fn scaled_softmax_rows(scores: &mut [f32], width: usize, scale: f32) => scaled_softmax_rows_impl;
}
dispatch! {
    /// Row by row: `row = softmax(row * scale + bias)`, the bias by distance between columns.
    pub fn scaled_biased_softmax_rows(scores: &mut [f32], width: usize, scale: f32, distance_bias: &[f32]) => scaled_biased_softmax_rows_impl;
}
dispatch! {
    /// Mean of the rows into `out`, then L2-normalised.
    pub fn mean_pool_normalize(rows: &[f32], out: &mut [f32]) => mean_pool_normalize_impl;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erf_f64(x: f64) -> f64 {
        // erf from its Taylor series: converges fast on [-4, 4] in f64 with enough terms.
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-20 || n < 10.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 400.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_matches_the_series_to_float_precision() {
        let mut worst = 0f64;
        for i in -5000..=5000 {
            let x = i as f32 * 0.001;
            for fma in [false, true] {
                let got = if fma {
                    erf_impl::<true>(x)
                } else {
                    erf_impl::<false>(x)
                };
                worst = worst.max((got as f64 - erf_f64(x as f64)).abs());
            }
        }
        assert!(worst < 5e-7, "largest erf error {worst}");
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0f64;
        for i in 0..=86_000 {
            let x = -(i as f32) * 0.001;
            let want = (x as f64).exp();
            let got = exp_impl::<false>(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "largest relative exp error {worst}");
        assert_eq!(exp_impl::<false>(0.0), 1.0);
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance() {
        let mut x: Vec<f32> = (0..384)
            .map(|i| (i as f32 * 0.37).sin() * 3.0 + 1.0)
            .collect();
        let gamma = vec![1.0; 384];
        let beta = vec![0.0; 384];
        layer_norm(&mut x, &gamma, &beta, 1e-12);
        let mean = x.iter().sum::<f32>() / 384.0;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 384.0;
        assert!(mean.abs() < 1e-5, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-4, "variance {var}");
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut s = vec![0.5, 1.5, -1.0, 0.25, 5.0, -50.0, 1.0, 1.0, 3.5];
        scaled_softmax_rows(&mut s, 9, 2.0);
        let total: f32 = s.iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(s[4] > s[8] && s[8] > s[1] && s[5] >= 0.0);
    }

    #[test]
    fn dot_handles_lengths_that_are_not_multiples_of_the_lanes() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let want: f32 = a.iter().map(|v| v * v).sum();
        assert_eq!(dot_impl::<false>(&a, &a), want);
    }
}
