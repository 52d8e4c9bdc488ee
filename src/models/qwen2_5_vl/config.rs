use crate::models::config_json::{ConfigError, Fields};

/// `vision_config` of a Qwen2.5-VL checkpoint plus the image-token ids from the top level.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_chans: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    pub window_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
    pub out_hidden_size: usize,
    pub image_token_id: u32,
    pub vision_start_token_id: u32,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Input features of one patch: channels x temporal x patch x patch.
    pub fn patch_dim(&self) -> usize {
        self.in_chans * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    pub fn merge_unit(&self) -> usize {
        self.spatial_merge_size * self.spatial_merge_size
    }

    pub(crate) fn parse(top: &Fields<'_>) -> Result<VisionConfig, ConfigError> {
        let json = top.get("vision_config").ok_or_else(|| top.err("vision_config", "is missing"))?;
        let f = Fields { path: top.path, json };
        let fullatt = f
            .get("fullatt_block_indexes")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect())
            .unwrap_or_default();
        let hidden_act = f.get("hidden_act").and_then(|v| v.as_str()).unwrap_or("silu");
        if hidden_act != "silu" {
            return Err(f.err("vision_config.hidden_act", "only \"silu\" is supported"));
        }
        let c = VisionConfig {
            depth: f.usize("depth")?,
            hidden_size: f.usize("hidden_size")?,
            intermediate_size: f.usize("intermediate_size")?,
            num_heads: f.usize("num_heads")?,
            in_chans: f.opt_usize("in_chans")?.or(f.opt_usize("in_channels")?).unwrap_or(3),
            patch_size: f.usize("patch_size")?,
            temporal_patch_size: f.opt_usize("temporal_patch_size")?.unwrap_or(2),
            spatial_merge_size: f.opt_usize("spatial_merge_size")?.unwrap_or(2),
            window_size: f.usize("window_size")?,
            fullatt_block_indexes: fullatt,
            out_hidden_size: f.usize("out_hidden_size")?,
            image_token_id: top
                .ids("image_token_id")
                .first()
                .copied()
                .ok_or_else(|| top.err("image_token_id", "is missing"))?,
            vision_start_token_id: top
                .ids("vision_start_token_id")
                .first()
                .copied()
                .ok_or_else(|| top.err("vision_start_token_id", "is missing"))?,
        };
        if !c.hidden_size.is_multiple_of(c.num_heads) || !c.head_dim().is_multiple_of(4) {
            return Err(f.err("vision_config.num_heads", "hidden_size / num_heads must be a multiple of 4"));
        }
        let unit = c.patch_size * c.spatial_merge_size;
        if !c.window_size.is_multiple_of(unit) {
            return Err(f.err(
                "vision_config.window_size",
                &format!("must be a multiple of patch_size x spatial_merge_size = {unit}"),
            ));
        }
        Ok(c)
    }
}
