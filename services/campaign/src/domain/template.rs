//! Per-recipient template parameters: a parameter's text may name audience columns as
//! `{{column}}`; each recipient gets the template with its own values filled in.

use std::collections::{BTreeMap, BTreeSet};

use caas_events::model::Template;

/// The column names a template refers to.
pub fn placeholders(template: &Template) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for parameter in &template.parameters {
        let mut rest = parameter.text.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                break;
            };
            names.insert(after[..end].trim().to_string());
            rest = &after[end + 2..];
        }
    }
    names
}

/// The template with every `{{column}}` replaced by the recipient's value; an empty or missing
/// value is an error naming the column (the provider would refuse an empty parameter).
pub fn render(template: &Template, params: &BTreeMap<String, String>) -> Result<Template, String> {
    let mut rendered = template.clone();
    for parameter in &mut rendered.parameters {
        if !parameter.text.contains("{{") {
            continue;
        }
        let mut output = String::with_capacity(parameter.text.len());
        let mut rest = parameter.text.as_str();
        while let Some(start) = rest.find("{{") {
            output.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                output.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = after[..end].trim();
            let value = lookup(params, name)
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| format!("no value for template parameter {{{{{name}}}}}"))?;
            output.push_str(value);
            rest = &after[end + 2..];
        }
        output.push_str(rest);
        parameter.text = output;
    }
    Ok(rendered)
}

/// A column by exact name, else case-insensitively.
fn lookup<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Option<&'a String> {
    params.get(name).or_else(|| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_events::model::{TemplateComponent, TemplateParameter};

    fn template(texts: &[&str]) -> Template {
        Template {
            name: "order_update".into(),
            language: "en".into(),
            parameters: texts
                .iter()
                .map(|text| TemplateParameter {
                    component: TemplateComponent::Body,
                    button_index: None,
                    text: text.to_string(),
                })
                .collect(),
            header_media: None,
        }
    }

    #[test]
    fn placeholders_are_filled_per_recipient() {
        let template = template(&["Hi {{ first_name }}!", "{{order}}", "fixed", "{{ unclosed"]);
        assert_eq!(
            placeholders(&template),
            ["first_name".to_string(), "order".to_string()].into()
        );
        let params: BTreeMap<String, String> = [
            ("First_Name".to_string(), "Ada".to_string()),
            ("order".to_string(), "A-17".to_string()),
        ]
        .into();
        let rendered = render(&template, &params).unwrap();
        let texts: Vec<&str> = rendered
            .parameters
            .iter()
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(texts, vec!["Hi Ada!", "A-17", "fixed", "{{ unclosed"]);
    }

    #[test]
    fn a_missing_value_names_the_column() {
        let error = render(&template(&["{{order}}"]), &BTreeMap::new()).unwrap_err();
        assert!(error.contains("{{order}}"), "{error}");
    }
}
