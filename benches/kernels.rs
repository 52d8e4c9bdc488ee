//! `cargo bench`: the same table as `culturelens bench`, on the default adapter
//! (CULTURELENS_DEVICE picks another).

fn main() -> anyhow::Result<()> {
    let selector = std::env::var("CULTURELENS_DEVICE").ok().map(|s| s.parse().unwrap_or_default()).unwrap_or_default();
    let gpu = culturelens::gpu::Gpu::new(&selector)?;
    culturelens::bench::run(&gpu, &culturelens::bench::BenchOptions::default())
}
