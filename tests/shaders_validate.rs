//! Every WGSL variant the engine can build parses, validates and translates to SPIR-V with naga,
//! whatever adapter the tests run on, so no variant can rot unseen.

use culturelens::ops::shaders::all_variants;

#[test]
fn every_shader_variant_validates_and_translates_to_spirv() {
    let variants = all_variants();
    assert!(variants.len() >= 12, "expected every op and dtype variant, got {}", variants.len());
    for (key, source) in variants {
        let module =
            naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{key:?}: {}", e.emit_to_string(&source)));
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{key:?}: {}", e.emit_to_string(&source)));
        let spv = naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{key:?}: SPIR-V: {e}"));
        assert!(spv.len() > 100, "{key:?}: empty SPIR-V");
    }
}
