//! detcd's deterministic simulation suite (see issue 3): it drives real detcd members as madsim
//! nodes. It only means anything in a `--cfg madsim` build.
