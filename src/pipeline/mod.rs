//! The culture-neuron pipeline: collect → identify → ablate → report (DESIGN §1, §5).

pub mod ablate;
pub mod ablated_logits;
pub mod cli;
pub mod collect;
pub mod data;
pub mod identify;
pub mod model;
pub mod outcome;
pub mod run;
pub mod shard;
