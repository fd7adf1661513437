//! Comment-preserving edits of `lamina.toml`.

use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, TableLike, Value};

use super::*;
use crate::access::AccessSet;

/// An editable `lamina.toml` that keeps everything it does not change: comments, blank lines,
/// key order and quoting.
#[derive(Debug, Clone)]
pub struct ManifestDocument {
    path: PathBuf,
    document: DocumentMut,
}

impl ManifestDocument {
    /// Reads the manifest at `path` for editing. It must be valid already: editing a manifest
    /// that does not load would only add to the confusion.
    pub fn open(path: &Path) -> Result<ManifestDocument, ManifestError> {
        let path = std::path::absolute(path)?;
        let text = fs_err::read_to_string(&path)?;
        ManifestDocument::parse(&path, &text)
    }

    /// The document of `text`, validated as the manifest at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ManifestDocument, ManifestError> {
        Manifest::parse(path, text)?;
        let document = text.parse::<DocumentMut>().expect("validated above");
        Ok(ManifestDocument {
            path: path.to_path_buf(),
            document,
        })
    }

    /// The text `lamina init` writes for a new project.
    pub fn new_project_text(name: &str) -> String {
        format!(
            "[project]\nname = \"{name}\"\n\n\
             [target]\ndefault = \"local\"   # or \"aws\"; `lamina push --target` overrides\n"
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The edited text, validated.
    pub fn manifest(&self) -> Result<Manifest, ManifestError> {
        Manifest::parse(&self.path, &self.to_string())
    }

    /// Validates the edited text and writes it atomically. Returns the manifest it now holds.
    pub fn save(&self) -> Result<Manifest, ManifestError> {
        let manifest = self.manifest()?;
        write_user_file(&self.path, self.to_string().as_bytes())?;
        Ok(manifest)
    }

    /// Adds `[layers.NAME]` after the last layer, writing only the keys that differ from the
    /// defaults.
    pub fn add_layer(&mut self, layer: &LayerConfig) -> Result<(), ManifestError> {
        if self
            .section("layers")
            .is_some_and(|layers| layers.contains_key(&layer.name))
        {
            return Err(ManifestError::DuplicateLayer {
                name: layer.name.clone(),
                path: self.path.clone(),
            });
        }
        let mut table = toml_edit::Table::new();
        if layer.path != default_layer_path(&layer.name) {
            table.insert(
                "path",
                toml_edit::value(layer.path.to_string_lossy().as_ref()),
            );
        }
        table.insert("runtimes", toml_edit::value(string_array(&layer.runtimes)));
        table.insert(
            "architectures",
            toml_edit::value(string_array(&layer.architectures)),
        );
        if !layer.access.is_owner_only() {
            table.insert(
                "access",
                toml_edit::value(string_array(&layer.access.to_strings())),
            );
        }
        self.section_mut("layers")?
            .insert(&layer.name, Item::Table(table));
        Ok(())
    }

    /// Removes `[layers.NAME]`, refusing while a function still refers to it.
    pub fn remove_layer(&mut self, name: &str) -> Result<(), ManifestError> {
        let manifest = self.manifest()?;
        let users: Vec<&str> = manifest
            .functions_using(name)
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        if !users.is_empty() {
            let functions = users
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let them = if users.len() == 1 { "it" } else { "them" };
            return Err(ManifestError::LayerInUse {
                layer: name.to_string(),
                functions,
                them,
            });
        }
        self.entry_table_mut("layers", name)?;
        self.section_mut("layers")?.remove(name);
        Ok(())
    }

    /// Replaces a layer's `access` list (removing the key when only the owner has access).
    pub fn set_layer_access(
        &mut self,
        name: &str,
        access: &AccessSet,
    ) -> Result<(), ManifestError> {
        let table = self.entry_table_mut("layers", name)?;
        match access.is_owner_only() {
            true => drop(table.remove("access")),
            false => set_array(table, "access", &access.to_strings()),
        }
        Ok(())
    }

    /// Adds `[functions.NAME]` after the last function.
    pub fn add_function(&mut self, function: &FunctionConfig) -> Result<(), ManifestError> {
        if self
            .section("functions")
            .is_some_and(|functions| functions.contains_key(&function.name))
        {
            return Err(ManifestError::DuplicateFunction {
                name: function.name.clone(),
                path: self.path.clone(),
            });
        }
        let mut table = toml_edit::Table::new();
        table.insert("runtime", toml_edit::value(&function.runtime));
        table.insert("handler", toml_edit::value(&function.handler));
        if function.source != default_function_source(&function.name) {
            table.insert(
                "source",
                toml_edit::value(function.source.to_string_lossy().as_ref()),
            );
        }
        let layers: Vec<String> = function.layers.iter().map(ToString::to_string).collect();
        table.insert("layers", toml_edit::value(string_array(&layers)));
        if function.architectures != [ARCHITECTURES[0]] {
            table.insert(
                "architectures",
                toml_edit::value(string_array(&function.architectures)),
            );
        }
        if let Some(role) = &function.role {
            table.insert("role", toml_edit::value(role));
        }
        self.section_mut("functions")?
            .insert(&function.name, Item::Table(table));
        Ok(())
    }

    /// Replaces a function's layer list, keeping the comments around the key.
    pub fn set_function_layers(
        &mut self,
        name: &str,
        layers: &[LayerRef],
    ) -> Result<(), ManifestError> {
        let values: Vec<String> = layers.iter().map(ToString::to_string).collect();
        set_array(self.entry_table_mut("functions", name)?, "layers", &values);
        Ok(())
    }

    pub fn remove_function(&mut self, name: &str) -> Result<(), ManifestError> {
        self.entry_table_mut("functions", name)?;
        self.section_mut("functions")?.remove(name);
        Ok(())
    }

    fn section(&self, key: &str) -> Option<&dyn TableLike> {
        self.document.get(key).and_then(Item::as_table_like)
    }

    /// The `layers` or `functions` table, created as an implicit table (no `[layers]` header of
    /// its own) when missing.
    fn section_mut(&mut self, key: &str) -> Result<&mut dyn TableLike, ManifestError> {
        let item = self.document.entry(key).or_insert_with(|| {
            let mut table = toml_edit::Table::new();
            table.set_implicit(true);
            Item::Table(table)
        });
        match item {
            Item::Table(table) => Ok(table),
            _ => Err(ManifestError::NotEditable {
                path: self.path.clone(),
                key: key.to_string(),
            }),
        }
    }

    /// The table `[SECTION.NAME]`, which must exist.
    fn entry_table_mut(
        &mut self,
        section: &str,
        name: &str,
    ) -> Result<&mut dyn TableLike, ManifestError> {
        let known = self.section(section).map(|table| {
            let names: Vec<String> = table.iter().map(|(key, _)| key.to_string()).collect();
            list_or_none(names.iter())
        });
        let path = self.path.clone();
        let missing = || match section {
            "layers" => ManifestError::UnknownLayer {
                name: name.to_string(),
                path: path.clone(),
                known: known.clone().unwrap_or_else(|| "(none)".into()),
            },
            _ => ManifestError::UnknownFunction {
                name: name.to_string(),
                path: path.clone(),
                known: known.clone().unwrap_or_else(|| "(none)".into()),
            },
        };
        let item = self
            .document
            .get_mut(section)
            .and_then(|item| item.as_table_like_mut());
        let entry = item
            .and_then(|table| table.get_mut(name))
            .ok_or_else(missing)?;
        entry
            .as_table_like_mut()
            .ok_or_else(|| ManifestError::NotEditable {
                path: self.path.clone(),
                key: format!("{section}.{name}"),
            })
    }
}

impl fmt::Display for ManifestDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.document.fmt(f)
    }
}

/// Writes a file the user owns (the manifest, `.gitignore`) atomically, keeping the permissions
/// of the file it replaces, or giving a new one `0644` (see [`crate::atomic`]).
pub fn write_user_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic::write_mode(path, bytes, crate::atomic::Mode::DEFAULT)
}

fn string_array(values: &[String]) -> Array {
    values.iter().map(String::as_str).collect()
}

/// Sets `key` to an array of `values`, keeping the decoration (comments, spacing) of the value it
/// replaces.
fn set_array(table: &mut dyn TableLike, key: &str, values: &[String]) {
    let mut array = string_array(values);
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            *array.decor_mut() = old.decor().clone();
            *old = Value::Array(array);
        }
        None => {
            table.insert(key, toml_edit::value(array));
        }
    }
}
