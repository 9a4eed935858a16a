//! `pbr doc`: module documentation generated from the typed params (the same schema lint uses).

use crate::module::Registry;

/// Render the module list (no name), one module's doc, or (`format == "json"`) all schemas.
pub fn render(registry: &Registry, module: Option<&str>, format: &str) -> Result<String, String> {
    let _ = (registry, module, format);
    Ok(String::new())
}
