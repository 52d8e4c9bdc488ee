//! Source generation for the fast-mode matmul (shaders/matmul_coop.wgsl): the tile shape and
//! the accumulators are spelled out per configuration, because WGSL has no arrays of
//! cooperative matrices.

use std::fmt::Write;

use crate::gpu::WeightDType;

use super::wgsl::{weight_loader, MATMUL_COMMON};

const TEMPLATE: &str = include_str!("../../shaders/matmul_coop.wgsl");

/// How a workgroup of the fast matmul is laid out: `sg_m x sg_n` subgroups of `subgroup` lanes,
/// each computing `am x an` 16x16 tiles, so a workgroup covers (16·sg_m·am) x (16·sg_n·an)
/// outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CoopTile {
    pub subgroup: u32,
    pub sg_m: u32,
    pub sg_n: u32,
    pub am: u32,
    pub an: u32,
}

/// Where the 16x16 matrix operations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoopOps {
    /// `coop_mat16x16` builtins (tensor cores): what fast mode runs.
    Hardware,
    /// The same operations written as scalar WGSL, each invocation holding whole matrices: slow,
    /// but it runs the fast kernel's staging, tiling and epilogue on any adapter, so tests can
    /// check them where no cooperative matrices exist.
    Emulated,
}

const K_SLAB: u32 = 32;
const LDS_F16: u32 = K_SLAB + 8;

impl CoopTile {
    /// The shape fast mode's emulation runs: small enough for any adapter's workgroup memory
    /// (20 KiB), with several subgroups and accumulators per subgroup.
    pub const EMULATED: CoopTile = CoopTile { subgroup: 8, sg_m: 2, sg_n: 2, am: 1, an: 2 };

    /// The shape used on an adapter with `subgroup` lanes: 4 subgroups, each 32 x 64 outputs,
    /// so each staged A fragment feeds 4 products and each B fragment 2. Chosen from the
    /// device's 48 KiB of workgroup memory (34 KiB used); not yet tuned on hardware.
    pub fn for_subgroup(subgroup: u32) -> CoopTile {
        CoopTile { subgroup, sg_m: 2, sg_n: 2, am: 2, an: 4 }
    }

    pub fn rows(&self) -> u32 {
        16 * self.sg_m * self.am
    }

    pub fn cols(&self) -> u32 {
        16 * self.sg_n * self.an
    }

    pub fn threads(&self) -> u32 {
        self.sg_m * self.sg_n * self.subgroup
    }

    /// Bytes of workgroup memory the kernel declares.
    pub fn workgroup_bytes(&self) -> u32 {
        2 * (self.rows() + self.cols()) * LDS_F16 * 2 + self.sg_m * self.sg_n * 256 * 4
    }

    /// Why this shape cannot be built, if it cannot: staging spreads each slab evenly over the
    /// invocations.
    pub fn check(&self, workgroup_limit: u32, invocation_limit: u32) -> Result<(), String> {
        let t = self.threads();
        if t == 0 || !(self.rows() * K_SLAB).is_multiple_of(t) || !(self.cols() * K_SLAB).is_multiple_of(t) {
            return Err(format!("{self:?}: {t} invocations do not divide the staged slabs evenly"));
        }
        if t > invocation_limit {
            return Err(format!("{self:?}: {t} invocations per workgroup, the device allows {invocation_limit}"));
        }
        if self.workgroup_bytes() > workgroup_limit {
            return Err(format!(
                "{self:?}: {} bytes of workgroup memory, the device allows {workgroup_limit}",
                self.workgroup_bytes()
            ));
        }
        Ok(())
    }

    pub fn key(&self) -> String {
        format!("s{}-{}x{}-{}x{}", self.subgroup, self.sg_m, self.sg_n, self.am, self.an)
    }
}

fn acc(i: u32, j: u32) -> String {
    format!("acc_{i}_{j}")
}

/// The generated part: constants, matrix ops, and the three spliced blocks of `main`.
fn ops_prelude(tile: &CoopTile, ops: CoopOps) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "const SUBGROUP: u32 = {}u;", tile.subgroup);
    let _ = writeln!(s, "const SG_M: u32 = {}u;", tile.sg_m);
    let _ = writeln!(s, "const SG_N: u32 = {}u;", tile.sg_n);
    let _ = writeln!(s, "const AM: u32 = {}u;", tile.am);
    let _ = writeln!(s, "const AN: u32 = {}u;", tile.an);
    if ops == CoopOps::Emulated {
        s.push_str(EMULATION);
    }
    s
}

/// Scalar stand-ins for the cooperative-matrix builtins, same layouts (A row-major in a_s,
/// B column-major in b_s, C stored row-major with stride 16) and the same ownership: a
/// "subgroup" of SUBGROUP invocations shares each 16x16 accumulator, one element in SUBGROUP
/// per lane. A fragment is just its offset into staging; the product reads it from there.
const EMULATION: &str = r#"
struct EmuAcc {
    v: array<f32, 256u / SUBGROUP>,
}

fn emu_mma(a: u32, b: u32, c: EmuAcc, lane: u32) -> EmuAcc {
    var r = c;
    for (var i = 0u; i < 256u / SUBGROUP; i++) {
        let e = lane + i * SUBGROUP;
        let row = a + (e / 16u) * LDS;
        let col = b + (e % 16u) * LDS;
        var s = r.v[i];
        for (var k = 0u; k < 16u; k++) {
            s = fma(f32(a_s[row + k]), f32(b_s[col + k]), s);
        }
        r.v[i] = s;
    }
    return r;
}

fn emu_store(c: EmuAcc, base: u32, lane: u32) {
    for (var i = 0u; i < 256u / SUBGROUP; i++) {
        c_s[base + lane + i * SUBGROUP] = c.v[i];
    }
}
"#;

fn subgroup_args(ops: CoopOps) -> &'static str {
    match ops {
        CoopOps::Hardware => {
            ", @builtin(subgroup_id) subgroup_id: u32, @builtin(subgroup_invocation_id) subgroup_lane: u32"
        }
        CoopOps::Emulated => "",
    }
}

fn subgroup_ids(ops: CoopOps) -> &'static str {
    match ops {
        CoopOps::Hardware => "let sg = subgroup_id;\n    let lane = subgroup_lane;",
        CoopOps::Emulated => "let sg = tid / SUBGROUP;\n    let lane = tid % SUBGROUP;",
    }
}

fn acc_decl(tile: &CoopTile, ops: CoopOps) -> String {
    let zero = match ops {
        CoopOps::Hardware => "coop_mat16x16<f32, C>()",
        CoopOps::Emulated => "EmuAcc()",
    };
    let mut s = String::new();
    for i in 0..tile.am {
        for j in 0..tile.an {
            let _ = write!(s, "var {} = {zero};\n    ", acc(i, j));
        }
    }
    s
}

fn mma_step(tile: &CoopTile, ops: CoopOps) -> String {
    let mut s = String::new();
    for i in 0..tile.am {
        let load = match ops {
            CoopOps::Hardware => format!("coopLoadT<coop_mat16x16<f16, A>>(&a_s[a_base + {}u * LDS], LDS)", 16 * i),
            CoopOps::Emulated => format!("a_base + {}u * LDS", 16 * i),
        };
        let _ = write!(s, "let frag_a{i} = {load};\n            ");
    }
    for j in 0..tile.an {
        let load = match ops {
            CoopOps::Hardware => format!("coopLoad<coop_mat16x16<f16, B>>(&b_s[b_base + {}u * LDS], LDS)", 16 * j),
            CoopOps::Emulated => format!("b_base + {}u * LDS", 16 * j),
        };
        let _ = write!(s, "let frag_b{j} = {load};\n            ");
    }
    for i in 0..tile.am {
        for j in 0..tile.an {
            let a = acc(i, j);
            let product = match ops {
                CoopOps::Hardware => format!("coopMultiplyAdd(frag_a{i}, frag_b{j}, {a})"),
                CoopOps::Emulated => format!("emu_mma(frag_a{i}, frag_b{j}, {a}, lane)"),
            };
            let _ = write!(s, "{a} = {product};\n            ");
        }
    }
    s
}

fn epilogue(tile: &CoopTile, ops: CoopOps) -> String {
    let mut s = String::new();
    for i in 0..tile.am {
        for j in 0..tile.an {
            let a = acc(i, j);
            // naga 30's SPIR-V writer needs the store's operands let-bound (docs/devices.md).
            let store = match ops {
                CoopOps::Hardware => {
                    format!(
                        "{{ let v = {a}; let dst = &c_s[sg * 256u]; let stride = 16u; coopStoreT(v, dst, stride); }}"
                    )
                }
                CoopOps::Emulated => format!("emu_store({a}, sg * 256u, lane);"),
            };
            let _ = write!(
                s,
                "{store}\n    workgroupBarrier();\n    \
                 write_tile(m0 + a_row + {}u, n0 + b_row + {}u, sg, lane);\n    workgroupBarrier();\n    ",
                16 * i,
                16 * j
            );
        }
    }
    s
}

/// The complete WGSL of the fast matmul for `dtype` weights.
pub fn source(dtype: WeightDType, tile: &CoopTile, ops: CoopOps) -> String {
    let enables = match ops {
        CoopOps::Hardware => "enable f16;\nenable wgpu_cooperative_matrix;\n",
        CoopOps::Emulated => "enable f16;\n",
    };
    let body = TEMPLATE
        .replace("$SUBGROUP_ARGS", subgroup_args(ops))
        .replace("$SUBGROUP_IDS", subgroup_ids(ops))
        .replace("$ACC_DECL", &acc_decl(tile, ops))
        .replace("$MMA_STEP", &mma_step(tile, ops))
        .replace("$EPILOGUE", &epilogue(tile, ops));
    format!("{enables}{}\n{MATMUL_COMMON}\n{}\n{body}", weight_loader(dtype), ops_prelude(tile, ops))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tile_fits_the_h200_and_divides_its_slabs() {
        let t = CoopTile::for_subgroup(32);
        assert_eq!((t.rows(), t.cols(), t.threads()), (64, 128, 128));
        assert_eq!(t.workgroup_bytes(), 34816);
        t.check(48 * 1024, 1024).unwrap();
        assert!(t.check(32 * 1024, 1024).unwrap_err().contains("workgroup memory"));
        let odd = CoopTile { subgroup: 24, ..t };
        assert!(odd.check(48 * 1024, 1024).unwrap_err().contains("divide"));
    }

    #[test]
    fn every_accumulator_is_declared_multiplied_and_stored() {
        let t = CoopTile { subgroup: 32, sg_m: 1, sg_n: 2, am: 3, an: 2 };
        for ops in [CoopOps::Hardware, CoopOps::Emulated] {
            let s = source(WeightDType::BF16, &t, ops);
            assert!(!s.contains('$'), "unfilled placeholder");
            for i in 0..3 {
                for j in 0..2 {
                    let a = acc(i, j);
                    assert_eq!(s.matches(&format!("var {a} =")).count(), 1);
                    assert_eq!(s.matches(&format!("{a} = ")).count(), 2, "declared and updated once each");
                }
            }
            assert_eq!(s.matches("write_tile(m0").count(), 6);
        }
    }
}
