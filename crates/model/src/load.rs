//! Loading manifests from files, directories and strings into a validated [`ManifestSet`].

use crate::checks::{self, Declared, Loaded};
use crate::decode::Decoder;
use crate::diagnostics::{Diagnostic, Diagnostics, SourceFile};
use crate::kinds::{DisruptionBudget, GoldImage, Manifest, Node, TaintPolicy, decode_document};
use crate::values::Name;
use crate::yaml;
use std::path::{Path, PathBuf};

/// Every resource of a valid set of manifests, each kind in load order (files sorted by path,
/// documents in file order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    /// Declared nodes.
    pub nodes: Vec<Node>,
    /// Declared gold images.
    pub gold_images: Vec<GoldImage>,
    /// Declared disruption budgets.
    pub budgets: Vec<DisruptionBudget>,
    /// Declared taint policies.
    pub taint_policies: Vec<TaintPolicy>,
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl ManifestSet {
    /// One line, e.g. `4 nodes, 2 gold images, 1 budget, 1 taint policy: valid`.
    pub fn summary(&self) -> String {
        format!(
            "{}, {}, {}, {}: valid",
            count(self.nodes.len(), "node", "nodes"),
            count(self.gold_images.len(), "gold image", "gold images"),
            count(self.budgets.len(), "budget", "budgets"),
            count(self.taint_policies.len(), "taint policy", "taint policies"),
        )
    }

    /// Every resource as a [`Manifest`]: nodes, gold images, budgets, taint policies.
    pub fn manifests(&self) -> Vec<Manifest> {
        self.nodes
            .iter()
            .cloned()
            .map(Manifest::Node)
            .chain(self.gold_images.iter().cloned().map(Manifest::GoldImage))
            .chain(self.budgets.iter().cloned().map(Manifest::DisruptionBudget))
            .chain(
                self.taint_policies
                    .iter()
                    .cloned()
                    .map(Manifest::TaintPolicy),
            )
            .collect()
    }

    /// The set as a multi-document YAML text that [`load_str`] reads back to an equal set.
    ///
    /// # Errors
    /// Only if YAML serialisation fails, which these plain data types do not trigger.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut out = String::new();
        for m in self.manifests() {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&m)?);
        }
        Ok(out)
    }

    /// The node with this name.
    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The gold image with this name.
    pub fn gold_image(&self, name: &Name) -> Option<&GoldImage> {
        self.gold_images.iter().find(|g| g.name() == name)
    }

    /// The budgets whose selector covers the node.
    pub fn budgets_for<'a>(
        &'a self,
        node: &'a Node,
    ) -> impl Iterator<Item = &'a DisruptionBudget> + 'a {
        self.budgets
            .iter()
            .filter(move |b| b.spec.selector.matches(&node.metadata.labels))
    }

    fn push(&mut self, m: Manifest) {
        match m {
            Manifest::Node(r) => self.nodes.push(r),
            Manifest::GoldImage(r) => self.gold_images.push(r),
            Manifest::DisruptionBudget(r) => self.budgets.push(r),
            Manifest::TaintPolicy(r) => self.taint_policies.push(r),
        }
    }
}

/// Loads and validates manifests from one text; `file_name` is used in diagnostics.
///
/// # Errors
/// Every problem found, as [`Diagnostics`].
pub fn load_str(file_name: &str, text: &str) -> Result<ManifestSet, Diagnostics> {
    load_sources(vec![SourceFile::new(file_name, text)], vec![])
}

/// Loads and validates manifests from files and directories. A directory contributes its own
/// `*.yaml` and `*.yml` files, not those of its subdirectories (like `kubectl apply -f DIR`
/// without `-R`): a deployment folder keeps Cerbos policies and cloud-init snippets in
/// subfolders, and those are not reborn manifests. Files are read in sorted path order. Files
/// named explicitly are read whatever their extension.
///
/// # Errors
/// Every problem in every file, as [`Diagnostics`]: unreadable paths, YAML syntax, wrong types,
/// unknown fields, and the cross-file checks (duplicate names, undeclared gold images,
/// overlapping VMID ranges, budgets selecting nothing, duplicate addresses).
pub fn load_paths(paths: &[PathBuf]) -> Result<ManifestSet, Diagnostics> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            if let Err(e) = collect_dir(path, &mut files) {
                problems.push(path_problem(path, &format!("cannot read directory: {e}")));
            } else if files.len() == before {
                problems.push(path_problem(
                    path,
                    "no manifest files (*.yaml, *.yml) in this directory",
                ));
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    let mut sources = Vec::new();
    for file in files {
        match std::fs::read(&file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => {
                    sources.push(SourceFile::new(&file.display().to_string(), &text));
                }
                Err(_) => problems.push(path_problem(&file, "file is not valid UTF-8")),
            },
            Err(e) => problems.push(path_problem(&file, &format!("cannot read file: {e}"))),
        }
    }
    load_sources(sources, problems)
}

fn path_problem(path: &Path, message: &str) -> Diagnostic {
    Diagnostic {
        file: path.display().to_string(),
        line: 0,
        col: 0,
        width: 0,
        message: message.to_string(),
        source_line: String::new(),
        help: Some("pass manifest files or directories that exist and are readable".to_string()),
    }
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn load_sources(
    sources: Vec<SourceFile>,
    mut problems: Vec<Diagnostic>,
) -> Result<ManifestSet, Diagnostics> {
    let mut loaded = Vec::new();
    let mut declared = Vec::new();
    let mut syntax_error = false;
    for (file, source) in sources.iter().enumerate() {
        let parsed = yaml::parse(&source.text);
        syntax_error |= parsed.syntax_error;
        for issue in &parsed.issues {
            problems.push(source.diagnostic(issue.span, issue.message.clone(), issue.help.clone()));
        }
        let mut d = Decoder::new(source);
        for doc in &parsed.documents {
            if doc.is_null() {
                continue;
            }
            let outcome = decode_document(doc, &mut d);
            let spans = d.take_spans();
            if let (Some(kind), Some(name)) = (outcome.kind, outcome.name) {
                declared.push(Declared {
                    kind,
                    name,
                    labels: outcome.labels,
                    file,
                    span: spans.get("metadata.name").copied().unwrap_or(doc.span),
                });
            }
            if let Some(manifest) = outcome.manifest {
                loaded.push(Loaded {
                    file,
                    manifest,
                    spans,
                    doc_span: doc.span,
                });
            }
        }
        problems.append(&mut d.diagnostics);
    }
    problems.extend(checks::check(&sources, &loaded, &declared, syntax_error));
    if !problems.is_empty() {
        return Err(Diagnostics::new(problems));
    }
    let mut set = ManifestSet::default();
    for l in loaded {
        set.push(l.manifest);
    }
    Ok(set)
}
