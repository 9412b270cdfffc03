//! Being written.
use super::{ComposeError, LoadOptions, Project};

pub(crate) fn load(_opts: &LoadOptions) -> Result<Project, ComposeError> {
    Err(ComposeError::project("compose loader not built yet"))
}
