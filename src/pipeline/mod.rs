//! The culture-neuron pipeline: collect → identify → ablate → report (docs/methods.md).

pub mod ablate;
pub mod ablated_logits;
pub mod cli;
pub mod collect;
pub mod data;
pub mod identify;
pub mod inspect;
pub mod model;
pub mod outcome;
pub mod run;
pub mod shard;
pub mod steer;
pub mod study;
