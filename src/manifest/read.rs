//! Reading a parsed `lamina.toml` into a [`Manifest`], one table at a time.
//!
//! Every problem becomes an error that names the file, the line (from the parser's spans), the
//! dotted key and the bad value, so the user can go straight to it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Item, Key, TableLike};

use super::*;
use crate::access::AccessSet;

/// A value with the byte range it came from, when the parser kept one.
type Spanned<T> = (T, Option<Range<usize>>);

/// Walks a parsed document, turning each problem into an error that names where it is.
pub(super) struct Reader<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

const TOP_KEYS: &[&str] = &["project", "target", "cache", "layers", "functions"];
const PROJECT_KEYS: &[&str] = &["name"];
const TARGET_KEYS: &[&str] = &["default", "aws"];
const AWS_KEYS: &[&str] = &["region", "bucket", "prefix", "layer_name_prefix"];
const CACHE_KEYS: &[&str] = &["remote", "mode"];
const LAYER_KEYS: &[&str] = &["path", "runtimes", "architectures", "access"];
const FUNCTION_KEYS: &[&str] = &[
    "runtime",
    "handler",
    "source",
    "layers",
    "architectures",
    "role",
];

impl Reader<'_> {
    pub(super) fn manifest(
        &self,
        top: &dyn TableLike,
        root: PathBuf,
    ) -> Result<Manifest, ManifestError> {
        self.check_keys(top, "", TOP_KEYS)?;
        let name = match self.table(top, "", "project")? {
            Some(project) => self.project_name(project, &root)?,
            None => default_project_name(&root),
        };
        let layers = self.named_tables(top, "layers", |name, table| self.layer(name, table))?;
        let functions =
            self.named_tables(top, "functions", |name, table| self.function(name, table))?;
        let manifest = Manifest {
            name,
            target: self.target(top)?,
            cache: self.cache(top)?,
            layers,
            functions,
            root,
        };
        self.check_references(top, &manifest)?;
        Ok(manifest)
    }

    fn project_name(&self, project: &dyn TableLike, root: &Path) -> Result<String, ManifestError> {
        self.check_keys(project, "project", PROJECT_KEYS)?;
        match self.string(project, "project", "name")? {
            Some((name, span)) => {
                check::name(&name)
                    .map_err(|problem| self.invalid("project.name", span, problem))?;
                Ok(name)
            }
            None => Ok(default_project_name(root)),
        }
    }

    fn target(&self, top: &dyn TableLike) -> Result<TargetConfig, ManifestError> {
        let Some(target) = self.table(top, "", "target")? else {
            return Ok(TargetConfig::default());
        };
        self.check_keys(target, "target", TARGET_KEYS)?;
        let default = match self.string(target, "target", "default")? {
            None => TargetKind::Local,
            Some((value, span)) => parse_target(&value)
                .map_err(|problem| self.invalid("target.default", span, problem))?,
        };
        let aws = match self.table(target, "target", "aws")? {
            Some(aws) => self.aws(aws)?,
            None => AwsConfig::default(),
        };
        Ok(TargetConfig { default, aws })
    }

    fn aws(&self, aws: &dyn TableLike) -> Result<AwsConfig, ManifestError> {
        self.check_keys(aws, "target.aws", AWS_KEYS)?;
        let region = match self.string(aws, "target.aws", "region")? {
            Some((region, span)) => {
                check::region(&region)
                    .map_err(|problem| self.invalid("target.aws.region", span, problem))?;
                Some(region)
            }
            None => None,
        };
        let bucket = self.nonempty_string(aws, "target.aws", "bucket")?;
        let prefix = self.string(aws, "target.aws", "prefix")?;
        // The prefix becomes part of every AWS layer name, so it obeys the same rules.
        let layer_name_prefix = match self.string(aws, "target.aws", "layer_name_prefix")? {
            Some((prefix, span)) if !prefix.is_empty() => {
                check::name(&prefix).map_err(|problem| {
                    self.invalid("target.aws.layer_name_prefix", span, problem)
                })?;
                prefix
            }
            _ => String::new(),
        };
        Ok(AwsConfig {
            region,
            bucket,
            prefix: prefix.map(|(text, _)| text).unwrap_or_default(),
            layer_name_prefix,
        })
    }

    fn cache(&self, top: &dyn TableLike) -> Result<CacheConfig, ManifestError> {
        let Some(cache) = self.table(top, "", "cache")? else {
            return Ok(CacheConfig::default());
        };
        self.check_keys(cache, "cache", CACHE_KEYS)?;
        let remote = match self.string(cache, "cache", "remote")? {
            Some((remote, span)) => {
                let ok = remote
                    .strip_prefix("s3://")
                    .is_some_and(|rest| !rest.is_empty());
                let problem = ValueError::BadRemote {
                    value: remote.clone(),
                };
                ok.then_some(())
                    .ok_or_else(|| self.invalid("cache.remote", span, problem))?;
                Some(remote)
            }
            None => None,
        };
        let mode = match self.string(cache, "cache", "mode")? {
            None => CacheMode::ReadWrite,
            Some((mode, _)) if mode == "read-write" => CacheMode::ReadWrite,
            Some((mode, _)) if mode == "read-only" => CacheMode::ReadOnly,
            Some((mode, span)) => {
                return Err(self.invalid(
                    "cache.mode",
                    span,
                    ValueError::BadCacheMode { value: mode },
                ))
            }
        };
        Ok(CacheConfig { remote, mode })
    }

    fn layer(&self, name: &str, table: &dyn TableLike) -> Result<LayerConfig, ManifestError> {
        let prefix = format!("layers.{name}");
        self.check_keys(table, &prefix, LAYER_KEYS)?;
        let path = self.path(table, &prefix, "path")?;
        let runtimes = self.strings(table, &prefix, "runtimes", check::runtime)?;
        let architectures = self.architectures(table, &prefix)?;
        let access = match self.string_list(table, &prefix, "access")? {
            Some((values, span)) => AccessSet::parse(&values)
                .map_err(|error| self.invalid(&format!("{prefix}.access"), span, error.into()))?,
            None => AccessSet::default(),
        };
        Ok(LayerConfig {
            name: name.to_string(),
            path: path.unwrap_or_else(|| default_layer_path(name)),
            runtimes: runtimes.unwrap_or_default(),
            architectures,
            access,
        })
    }

    fn function(&self, name: &str, table: &dyn TableLike) -> Result<FunctionConfig, ManifestError> {
        let prefix = format!("functions.{name}");
        self.check_keys(table, &prefix, FUNCTION_KEYS)?;
        let (runtime, runtime_span) = self.required_string(table, &prefix, "runtime")?;
        check::runtime(&runtime)
            .map_err(|problem| self.invalid(&format!("{prefix}.runtime"), runtime_span, problem))?;
        let (handler, handler_span) = self.required_string(table, &prefix, "handler")?;
        check::handler(&handler, &runtime)
            .map_err(|problem| self.invalid(&format!("{prefix}.handler"), handler_span, problem))?;
        let layers = self.strings(table, &prefix, "layers", |value| {
            LayerRef::parse(value).map(drop)
        })?;
        let layers = layers
            .unwrap_or_default()
            .iter()
            .filter_map(|value| LayerRef::parse(value).ok())
            .collect();
        let role = match self.string(table, &prefix, "role")? {
            Some((role, span)) => {
                check::role(&role)
                    .map_err(|problem| self.invalid(&format!("{prefix}.role"), span, problem))?;
                Some(role)
            }
            None => None,
        };
        Ok(FunctionConfig {
            name: name.to_string(),
            source: self
                .path(table, &prefix, "source")?
                .unwrap_or_else(|| default_function_source(name)),
            layers,
            architectures: self.function_architecture(table, &prefix)?,
            runtime,
            handler,
            role,
        })
    }

    /// Every `NAME@...` names a layer of the project, and no function uses more than Lambda
    /// allows.
    fn check_references(
        &self,
        top: &dyn TableLike,
        manifest: &Manifest,
    ) -> Result<(), ManifestError> {
        for function in manifest.functions.values() {
            let span = top
                .get("functions")
                .and_then(Item::as_table_like)
                .and_then(|functions| functions.get(&function.name))
                .and_then(Item::as_table_like)
                .and_then(|table| table.get("layers"))
                .and_then(Item::span);
            self.check_function_layers(self.location(span), function, manifest)?;
        }
        Ok(())
    }

    /// Lambda attaches one version of each layer; a project reference must name a project layer.
    /// The limit of five layers is a check of the push plan, not of the manifest, so that the
    /// commands that would fix a function over the limit still load the project.
    fn check_function_layers(
        &self,
        location: Location,
        function: &FunctionConfig,
        manifest: &Manifest,
    ) -> Result<(), ManifestError> {
        let name = || function.name.clone();
        for (index, reference) in function.layers.iter().enumerate() {
            if let Some(layer) = reference.layer_name() {
                if !manifest.layers.contains_key(layer) {
                    return Err(ManifestError::UnknownLayerRef {
                        location,
                        function: name(),
                        reference: reference.to_string(),
                        known: list_or_none(manifest.layers.keys()),
                    });
                }
            }
            let earlier = &function.layers[..index];
            if earlier
                .iter()
                .any(|other| other.layer_key() == reference.layer_key())
            {
                let layer = reference.layer_key().to_string();
                return Err(ManifestError::RepeatedLayer {
                    location,
                    function: name(),
                    layer,
                });
            }
        }
        Ok(())
    }

    fn architectures(
        &self,
        table: &dyn TableLike,
        prefix: &str,
    ) -> Result<Vec<String>, ManifestError> {
        let architectures = self.strings(table, prefix, "architectures", check::architecture)?;
        match architectures {
            Some(list) if !list.is_empty() => Ok(list),
            Some(_) => Err(self.invalid(
                &format!("{prefix}.architectures"),
                table.get("architectures").and_then(Item::span),
                ValueError::Empty { value: "[]".into() },
            )),
            None => Ok(vec![ARCHITECTURES[0].to_string()]),
        }
    }

    /// A function's `architectures`: like a layer's, but with exactly one.
    fn function_architecture(
        &self,
        table: &dyn TableLike,
        prefix: &str,
    ) -> Result<Vec<String>, ManifestError> {
        let architectures = self.architectures(table, prefix)?;
        if architectures.len() == 1 {
            return Ok(architectures);
        }
        Err(self.invalid(
            &format!("{prefix}.architectures"),
            table.get("architectures").and_then(Item::span),
            ValueError::SeveralArchitectures {
                value: format!("{architectures:?}"),
                count: architectures.len(),
            },
        ))
    }

    /// `[layers.NAME]` or `[functions.NAME]` tables, each read by `read`.
    fn named_tables<T>(
        &self,
        top: &dyn TableLike,
        key: &str,
        read: impl Fn(&str, &dyn TableLike) -> Result<T, ManifestError>,
    ) -> Result<BTreeMap<String, T>, ManifestError> {
        let mut out = BTreeMap::new();
        let Some(tables) = self.table(top, "", key)? else {
            return Ok(out);
        };
        for (name, _) in tables.iter() {
            let name_span = tables.key(name).and_then(Key::span);
            check::name(name)
                .map_err(|problem| self.invalid(&format!("{key}.{name}"), name_span, problem))?;
            let table = self.table(tables, key, name)?.expect("listed keys exist");
            out.insert(name.to_string(), read(name, table)?);
        }
        Ok(out)
    }

    fn check_keys(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        allowed: &[&str],
    ) -> Result<(), ManifestError> {
        let Some((key, _)) = table.iter().find(|(key, _)| !allowed.contains(key)) else {
            return Ok(());
        };
        Err(ManifestError::UnknownKey {
            location: self.location(table.key(key).and_then(Key::span)),
            key: dotted(prefix, key),
            allowed: allowed.join(", "),
        })
    }

    fn table<'t>(
        &self,
        parent: &'t dyn TableLike,
        prefix: &str,
        key: &str,
    ) -> Result<Option<&'t dyn TableLike>, ManifestError> {
        let Some(item) = parent.get(key) else {
            return Ok(None);
        };
        item.as_table_like()
            .map(Some)
            .ok_or_else(|| self.wrong_type(parent, prefix, key, "a table"))
    }

    fn string(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
    ) -> Result<Option<Spanned<String>>, ManifestError> {
        let Some(item) = table.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(text) => Ok(Some((text.to_string(), item.span()))),
            None => Err(self.wrong_type(table, prefix, key, "a string")),
        }
    }

    fn required_string(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
    ) -> Result<Spanned<String>, ManifestError> {
        self.string(table, prefix, key)?
            .ok_or_else(|| self.wrong_type(table, prefix, key, "set (it is missing)"))
    }

    fn nonempty_string(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
    ) -> Result<Option<String>, ManifestError> {
        match self.string(table, prefix, key)? {
            Some((value, span)) if value.is_empty() => {
                Err(self.invalid(&dotted(prefix, key), span, ValueError::Empty { value }))
            }
            other => Ok(other.map(|(value, _)| value)),
        }
    }

    fn path(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
    ) -> Result<Option<PathBuf>, ManifestError> {
        match self.string(table, prefix, key)? {
            Some((value, span)) => {
                let root = self.path.parent().unwrap_or(Path::new(""));
                let checked = check::relative_path(&value)
                    .and_then(|path| check::resolved_path(root, &value).map(|()| path));
                checked
                    .map(Some)
                    .map_err(|problem| self.invalid(&dotted(prefix, key), span, problem))
            }
            None => Ok(None),
        }
    }

    fn string_list(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
    ) -> Result<Option<Spanned<Vec<String>>>, ManifestError> {
        let Some(item) = table.get(key) else {
            return Ok(None);
        };
        let wrong = || self.wrong_type(table, prefix, key, "an array of strings");
        let array = item.as_array().ok_or_else(wrong)?;
        let values: Option<Vec<String>> = array
            .iter()
            .map(|value| value.as_str().map(str::to_string))
            .collect();
        Ok(Some((values.ok_or_else(wrong)?, item.span())))
    }

    /// An array of strings, each passing `check`, without duplicates; each problem is located at
    /// the offending element.
    fn strings(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
        check: impl Fn(&str) -> Result<(), ValueError>,
    ) -> Result<Option<Vec<String>>, ManifestError> {
        let Some((values, _)) = self.string_list(table, prefix, key)? else {
            return Ok(None);
        };
        let array = table
            .get(key)
            .and_then(Item::as_array)
            .expect("checked by string_list");
        for (index, (value, element)) in values.iter().zip(array.iter()).enumerate() {
            let problem = match check(value) {
                Err(problem) => Some(problem),
                Ok(()) if values[..index].contains(value) => Some(ValueError::Duplicate {
                    value: value.clone(),
                }),
                Ok(()) => None,
            };
            if let Some(problem) = problem {
                return Err(self.invalid(&dotted(prefix, key), element.span(), problem));
            }
        }
        Ok(Some(values))
    }

    fn wrong_type(
        &self,
        table: &dyn TableLike,
        prefix: &str,
        key: &str,
        expected: &'static str,
    ) -> ManifestError {
        let span = table
            .get(key)
            .and_then(Item::span)
            .or_else(|| table.key(key).and_then(Key::span));
        ManifestError::WrongType {
            location: self.location(span),
            key: dotted(prefix, key),
            expected,
        }
    }

    fn invalid(&self, key: &str, span: Option<Range<usize>>, problem: ValueError) -> ManifestError {
        ManifestError::Invalid {
            location: self.location(span),
            key: key.to_string(),
            problem: Box::new(problem),
        }
    }

    fn location(&self, span: Option<Range<usize>>) -> Location {
        Location {
            path: self.path.to_path_buf(),
            line: span.map(|span| line_of(self.text, span.start)),
        }
    }
}

fn dotted(prefix: &str, key: &str) -> String {
    match prefix.is_empty() {
        true => key.to_string(),
        false => format!("{prefix}.{key}"),
    }
}
