//! The culture-neuron pipeline: collect → identify → ablate → report (DESIGN §1, §5).

pub mod collect;
pub mod data;
pub mod model;
pub mod identify;
pub mod ablate;
pub mod run;
pub mod cli;
