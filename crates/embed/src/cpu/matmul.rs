//! `activations · weight` with the weight packed once at load.
//!
//! A general GEMM packs both operands on every call. For this model that is wasted work:
//! the weights never change, and for a short batch (one query of 20 word pieces) repacking
//! 22 M weights per text costs more than the arithmetic. Here each weight matrix is laid out
//! once in column panels of 16 (`[n / 16][k][16]`), the order the kernel reads it, so a call
//! only streams it; the activations are read in place.
//!
//! The kernel computes 6 rows × 16 columns at a time in 12 AVX registers (the register
//! block of BLIS's Haswell kernel); rows are grouped so a block of activations stays in L2
//! while every panel of the weight passes over it.

use rayon::prelude::*;

/// Columns per panel: two 8-float AVX registers.
const PANEL: usize = 16;
/// Rows per register block.
const ROWS: usize = 6;
/// Activation bytes per row group, sized to stay in a 512 KiB L2 beside the weight panel.
const ROW_GROUP_BYTES: usize = 192 * 1024;

/// A `[k, n]` weight matrix in panel order, `n` padded to a multiple of 16 with zeros.
pub struct PackedMatrix {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedMatrix {
    /// Packs a PyTorch `Linear` weight, stored `[out, in]` row-major, as the `[in, out]`
    /// right-hand side of `x · Wᵀ`.
    pub fn from_linear(weight: &[f32], out: usize, inp: usize) -> Self {
        assert_eq!(weight.len(), out * inp);
        let panels_n = out.div_ceil(PANEL);
        let mut panels = vec![0f32; panels_n * inp * PANEL];
        for o in 0..out {
            let (p, lane) = (o / PANEL, o % PANEL);
            for i in 0..inp {
                panels[(p * inp + i) * PANEL + lane] = weight[o * inp + i];
            }
        }
        Self {
            k: inp,
            n: out,
            panels,
        }
    }

    fn panel_count(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.panels[p * self.k * PANEL..][..self.k * PANEL]
    }
}

/// `dst[rows × n] = x[rows × k] · w`, row-major; with `threads > 1` the weight panels are
/// shared out over the current rayon pool.
pub fn matmul(dst: &mut [f32], x: &[f32], rows: usize, w: &PackedMatrix, threads: usize) {
    let (k, n) = (w.k, w.n);
    assert!(
        x.len() >= rows * k && dst.len() >= rows * n,
        "matmul operands too small"
    );
    let group = (ROW_GROUP_BYTES / (k * 4)).max(1).div_ceil(ROWS) * ROWS;
    let panels = w.panel_count();
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    // Row groups outermost: a group of activations stays in L2 while every weight panel
    // passes over it, and each panel (at most k × 16 floats) stays in L1 or L2 for the group.
    for start in (0..rows).step_by(group) {
        let end = (start + group).min(rows);
        let run_panel = |p: usize| {
            let job = PanelJob {
                x: &x[start * k..end * k],
                x_row_stride: k,
                k,
                panel: w.panel(p),
                dst: dst_ptr.get().wrapping_add(start * n + p * PANEL),
                dst_row_stride: n,
                rows: end - start,
                cols: PANEL.min(n - p * PANEL),
            };
            // SAFETY: rows start..end and columns p*16..p*16+cols lie inside dst (checked
            // above); panels write disjoint columns, so threads never touch the same float.
            unsafe { job.run() };
        };
        if threads > 1 && panels > 1 {
            (0..panels).into_par_iter().for_each(run_panel);
        } else {
            (0..panels).for_each(run_panel);
        }
    }
}

/// Packs the `[k, n]` matrix whose element `(i, j)` is `src[i * stride_k + j * stride_n]`
/// into `panels`, in the layout of [`PackedMatrix`]; for operands built on the fly, such
/// as the keys and values of one attention head.
pub fn pack_strided(
    src: &[f32],
    k: usize,
    n: usize,
    stride_k: usize,
    stride_n: usize,
    panels: &mut Vec<f32>,
) {
    let panel_count = n.div_ceil(PANEL);
    panels.clear();
    panels.resize(panel_count * k * PANEL, 0.0);
    for j in 0..n {
        let (p, lane) = (j / PANEL, j % PANEL);
        for i in 0..k {
            panels[(p * k + i) * PANEL + lane] = src[i * stride_k + j * stride_n];
        }
    }
}

/// `dst = x · packed`, single-threaded, with explicit row strides: `rows` rows of `x`
/// (`k` floats each, `x_rs` apart) into `rows` rows of `dst` (`n` floats each, `dst_rs` apart).
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed_strided(
    dst: &mut [f32],
    dst_rs: usize,
    x: &[f32],
    x_rs: usize,
    rows: usize,
    packed: &[f32],
    k: usize,
    n: usize,
) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!(x.len() >= (rows - 1) * x_rs + k && dst.len() >= (rows - 1) * dst_rs + n);
    assert!(packed.len() >= n.div_ceil(PANEL) * k * PANEL);
    for p in 0..n.div_ceil(PANEL) {
        let job = PanelJob {
            x,
            x_row_stride: x_rs,
            k,
            panel: &packed[p * k * PANEL..][..k * PANEL],
            dst: dst.as_mut_ptr().wrapping_add(p * PANEL),
            dst_row_stride: dst_rs,
            rows,
            cols: PANEL.min(n - p * PANEL),
        };
        // SAFETY: all rows and columns p*16..p*16+cols of dst are in bounds (asserted).
        unsafe { job.run() };
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint column ranges of one buffer to rayon workers.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One weight panel against `rows` rows of `x` (`k` floats each, `x_row_stride` apart),
/// into `cols` (≤ 16) columns of `dst` (`dst_row_stride` apart), 6 rows at a time. A whole
/// panel is one call, so the CPU-feature dispatch is paid once per panel, not per block:
/// attention's products are small enough for that to show.
struct PanelJob<'a> {
    x: &'a [f32],
    x_row_stride: usize,
    k: usize,
    panel: &'a [f32],
    dst: *mut f32,
    dst_row_stride: usize,
    rows: usize,
    cols: usize,
}

impl PanelJob<'_> {
    /// # Safety
    /// `dst` must be valid for writes of `rows` rows of `cols` floats, `dst_row_stride` apart.
    unsafe fn run(&self) {
        if self.rows == 0 || self.k == 0 {
            return;
        }
        assert!((1..=PANEL).contains(&self.cols));
        assert!(
            self.x.len() >= (self.rows - 1) * self.x_row_stride + self.k
                && self.panel.len() >= self.k * PANEL
        );
        #[cfg(target_arch = "x86_64")]
        if super::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; x and panel bounds asserted above; the
            // caller's guarantee on dst is passed on.
            unsafe { avx2::panel(self) };
            return;
        }
        // SAFETY: as above.
        unsafe { self.run_portable() }
    }

    /// The same loops for CPUs without AVX2, left to the compiler to vectorise.
    ///
    /// # Safety
    /// As for [`PanelJob::run`].
    #[inline(never)]
    unsafe fn run_portable(&self) {
        for r0 in (0..self.rows).step_by(ROWS) {
            let block = ROWS.min(self.rows - r0);
            let mut acc = [[0f32; PANEL]; ROWS];
            for kk in 0..self.k {
                let w = &self.panel[kk * PANEL..][..PANEL];
                for (r, acc_row) in acc.iter_mut().enumerate().take(block) {
                    let xv = self.x[(r0 + r) * self.x_row_stride + kk];
                    for (a, wv) in acc_row.iter_mut().zip(w) {
                        *a += xv * wv;
                    }
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(block) {
                // SAFETY: within the caller's rows and columns.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        acc_row.as_ptr(),
                        self.dst.add((r0 + r) * self.dst_row_stride),
                        self.cols,
                    )
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{PANEL, PanelJob, ROWS};

    /// # Safety
    /// AVX2 and FMA present; `job.x` and `job.panel` hold what `job` describes (asserted by
    /// [`PanelJob::run`]); `job.dst` valid for writes of its rows and columns.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn panel(job: &PanelJob) {
        let mut r = 0;
        // SAFETY: each block covers rows r..r+R < job.rows; passed on from the caller.
        unsafe {
            while r + ROWS <= job.rows {
                block::<ROWS>(job, r);
                r += ROWS;
            }
            match job.rows - r {
                5 => block::<5>(job, r),
                4 => block::<4>(job, r),
                3 => block::<3>(job, r),
                2 => block::<2>(job, r),
                1 => block::<1>(job, r),
                _ => {}
            }
        }
    }

    /// Rows `r0..r0 + R` of the job: 2R accumulators of 8 floats, in registers.
    ///
    /// # Safety
    /// As for [`panel`], with `r0 + R <= job.rows`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize>(job: &PanelJob, r0: usize) {
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        let x_rs = job.x_row_stride;
        let xp = job.x.as_ptr().wrapping_add(r0 * x_rs);
        let wp = job.panel.as_ptr();
        // SAFETY: reads stay below (rows-1)*x_rs + k in x and k*16 in the panel (asserted by
        // PanelJob::run); stores stay in the caller's rows and columns.
        unsafe {
            for kk in 0..job.k {
                let w0 = _mm256_loadu_ps(wp.add(kk * PANEL));
                let w1 = _mm256_loadu_ps(wp.add(kk * PANEL + 8));
                for r in 0..R {
                    let xv = _mm256_broadcast_ss(&*xp.add(r * x_rs + kk));
                    lo[r] = _mm256_fmadd_ps(xv, w0, lo[r]);
                    hi[r] = _mm256_fmadd_ps(xv, w1, hi[r]);
                }
            }
            for r in 0..R {
                let out = job.dst.add((r0 + r) * job.dst_row_stride);
                if job.cols == PANEL {
                    _mm256_storeu_ps(out, lo[r]);
                    _mm256_storeu_ps(out.add(8), hi[r]);
                } else {
                    let mut row = [0f32; PANEL];
                    _mm256_storeu_ps(row.as_mut_ptr(), lo[r]);
                    _mm256_storeu_ps(row.as_mut_ptr().add(8), hi[r]);
                    std::ptr::copy_nonoverlapping(row.as_ptr(), out, job.cols);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w_out_in: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for c in 0..n {
                out[r * n + c] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w_out_in[c * k + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn matches_a_naive_product_for_awkward_shapes() {
        for (rows, k, n) in [
            (1, 3, 1),
            (7, 5, 17),
            (13, 64, 48),
            (40, 384, 33),
            (6, 1536, 16),
        ] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
                .collect();
            let packed = PackedMatrix::from_linear(&w, n, k);
            let want = naive(&x, &w, rows, k, n);
            for threads in [1, 2] {
                let mut got = vec![f32::NAN; rows * n];
                matmul(&mut got, &x, rows, &packed, threads);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-3 * e.abs().max(1.0),
                        "({rows},{k},{n}) #{i}: {g} vs {e}"
                    );
                }
            }
        }
    }
}
