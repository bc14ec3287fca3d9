//! The user's templates in the descriptions of the tools that take them.

use crate::images::templates::{Template, TemplateError};
use rmcp::handler::server::router::tool::ToolRouter;

/// The tools that take `template`.
const TEMPLATE_TOOLS: [&str; 3] = ["sandbox_execute", "sandbox_session", "sandbox_install"];

/// Names the user's usable templates (and their languages) in the
/// descriptions of the tools that take `template`, so a model knows it can
/// ask for them.
pub(crate) fn name_templates<S>(router: &mut ToolRouter<S>, templates: &[(String, Result<Template, TemplateError>)]) {
    let usable: Vec<String> = templates
        .iter()
        .filter_map(|(name, found)| {
            let template = found.as_ref().ok()?;
            Some(format!("`{name}` ({})", template.base.language().name()))
        })
        .collect();
    if usable.is_empty() {
        return;
    }
    let sentence = format!(
        " The user's own images (templates) here: {}; pass `template` to use one (in sandbox_execute with the template's `language`).",
        usable.join(", ")
    );
    for tool in TEMPLATE_TOOLS {
        if let Some(route) = router.map.get_mut(tool) {
            let description = route.attr.description.as_deref().unwrap_or_default();
            route.attr.description = Some(format!("{description}{sentence}").into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::templates::TemplateBase;
    use crate::runtime::Language;

    #[test]
    fn usable_templates_are_named_where_a_model_reads_them() {
        let mut router = crate::mcp::SandboxServer::tools();
        let before = router
            .map
            .get("sandbox_inspect")
            .and_then(|route| route.attr.description.clone());
        let templates = vec![
            (
                "data".to_string(),
                Ok(Template {
                    name: "data".into(),
                    folder: "/t/data".into(),
                    base: TemplateBase::PythonMl,
                }),
            ),
            ("Broken".to_string(), Err(TemplateError::BadName("Broken".into()))),
            (
                "web".to_string(),
                Ok(Template {
                    name: "web".into(),
                    folder: "/t/web".into(),
                    base: TemplateBase::Language(Language::JavaScript),
                }),
            ),
        ];
        name_templates(&mut router, &templates);
        for tool in TEMPLATE_TOOLS {
            let description = router.map[tool].attr.description.clone().unwrap_or_default();
            assert!(
                description.ends_with(
                    "here: `data` (python), `web` (javascript); pass `template` to use one (in sandbox_execute with the template's `language`)."
                ),
                "{tool}: {description}"
            );
        }
        assert_eq!(
            router
                .map
                .get("sandbox_inspect")
                .and_then(|route| route.attr.description.clone()),
            before
        );
        let mut untouched = crate::mcp::SandboxServer::tools();
        name_templates(&mut untouched, &[]);
        assert!(
            !untouched.map["sandbox_execute"]
                .attr
                .description
                .clone()
                .unwrap_or_default()
                .contains("template")
        );
    }
}
