//! Arms and their repetitions, read from directories. Files are recognised by content (a JSON
//! document's `schema`, a CSV's header), never by name.

use std::path::{Path, PathBuf};

use meshbench_formats::mesh_install::{MESH_INSTALL, MeshInstallSummary};
use meshbench_formats::trafficgen::{TRAFFICGEN, TrafficgenSummary, read_summary};
use meshbench_formats::usage::{NodeUsageRow, PodUsageRow, UsageKind, read_node_csv, read_pod_csv};

use crate::Error;

/// One run of one arm: everything found in its directory.
#[derive(Debug, Default)]
pub struct Repetition {
    pub dir: PathBuf,
    /// Pod rows, with the index of the file they came from (a snapshot without timestamps is
    /// told apart by its file).
    pub pods: Vec<(usize, PodUsageRow)>,
    pub nodes: Vec<(usize, NodeUsageRow)>,
    pub loads: Vec<TrafficgenSummary>,
    pub install: Option<MeshInstallSummary>,
    /// Each file read, with a hash of its bytes: repetitions that are copies of one another
    /// are told apart by it (see [`copies`]).
    pub files: Vec<(PathBuf, u64)>,
}

/// A named arm: one mesh (or none), one or more repetitions.
#[derive(Debug)]
pub struct Arm {
    pub name: String,
    pub reps: Vec<Repetition>,
}

fn bad(path: &Path, problem: impl Into<String>) -> Error {
    Error::Input {
        path: path.display().to_string(),
        problem: problem.into(),
    }
}

/// Reads `NAME=DIR`: DIR holds one repetition's files, or one sub-directory per repetition.
pub fn arm(name: &str, dir: &Path) -> Result<Arm, Error> {
    let entries = sorted_entries(dir)?;
    let (subdirs, files): (Vec<PathBuf>, Vec<PathBuf>) =
        entries.into_iter().partition(|p| p.is_dir());
    let reps = match (subdirs.is_empty(), files.is_empty()) {
        (true, true) => {
            return Err(bad(
                dir,
                format!(
                    "arm {name:?} has no files: expected one repetition's files (top-parse CSVs, \
                     trafficgen and mesh-install JSON) or one sub-directory per repetition"
                ),
            ));
        }
        (true, false) => vec![repetition(dir, &files)?],
        (false, true) => subdirs
            .iter()
            .map(|d| match sorted_entries(d)? {
                // A repetition without files would count as a run that measured nothing.
                files if files.is_empty() => Err(bad(
                    d,
                    format!(
                        "a repetition of arm {name:?} with no files: expected top-parse CSVs \
                         and trafficgen or mesh-install JSON (take the directory out if the run \
                         failed)"
                    ),
                )),
                files => repetition(d, &files),
            })
            .collect::<Result<_, _>>()?,
        (false, false) => {
            return Err(bad(
                dir,
                format!(
                    "holds both files ({}) and sub-directories ({}): put one repetition's files \
                     directly in it, or one sub-directory per repetition",
                    files[0].display(),
                    subdirs[0].display()
                ),
            ));
        }
    };
    Ok(Arm {
        name: name.to_owned(),
        reps,
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let read = std::fs::read_dir(dir).map_err(|e| bad(dir, format!("cannot read: {e}")))?;
    let mut entries: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    Ok(entries)
}

fn repetition(dir: &Path, files: &[PathBuf]) -> Result<Repetition, Error> {
    let mut rep = Repetition {
        dir: dir.to_path_buf(),
        ..Repetition::default()
    };
    for (index, path) in files.iter().enumerate() {
        if path.is_dir() {
            return Err(bad(path, "a directory inside a repetition"));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
        rep.files.push((path.clone(), fingerprint(&text)));
        if text.trim().is_empty() {
            return Err(bad(
                path,
                "empty file: expected a top-parse CSV or a meshbench JSON document",
            ));
        }
        if text.trim_start().starts_with('{') {
            json(path, &text, &mut rep)?;
        } else {
            let header = text.lines().next().unwrap_or_default();
            match UsageKind::from_csv_header(header.split(',')) {
                Some(UsageKind::Pods) => rep.pods.extend(
                    read_pod_csv(text.as_bytes())
                        .map_err(|e| bad(path, e.to_string()))?
                        .into_iter()
                        .map(|r| (index, r)),
                ),
                Some(UsageKind::Nodes) => rep.nodes.extend(
                    read_node_csv(text.as_bytes())
                        .map_err(|e| bad(path, e.to_string()))?
                        .into_iter()
                        .map(|r| (index, r)),
                ),
                None => {
                    return Err(bad(
                        path,
                        "neither a meshbench JSON document nor a top-parse CSV (expected a \
                         `schema` field, or a header starting run,timestamp,...)",
                    ));
                }
            }
        }
    }
    Ok(rep)
}

fn fingerprint(text: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash as _, Hasher as _};
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Files with the same bytes in two repetitions (of one arm or of two): a copied file, or one
/// directory given twice. Each repetition must be its own run; copies make two arms look alike,
/// or an interval narrower than the runs allow. One line per pair of repetitions, naming the
/// copied files.
pub fn copies(arms: &[Arm]) -> Vec<String> {
    // Every file seen so far: its hash, and the arm and repetition it is in.
    let mut seen: Vec<(u64, usize, usize)> = Vec::new();
    // A repetition: its arm's index, and its own.
    type At = (usize, usize);
    // A copy's repetition, its original's, and the copied files' names.
    let mut pairs: Vec<(At, At, Vec<String>)> = Vec::new();
    for (a, arm) in arms.iter().enumerate() {
        for (r, rep) in arm.reps.iter().enumerate() {
            for (path, hash) in &rep.files {
                let original = seen
                    .iter()
                    .find(|&&(h, oa, or)| h == *hash && (oa, or) != (a, r))
                    .map(|&(_, oa, or)| (oa, or));
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                );
                match original {
                    Some(o) => match pairs.iter_mut().find(|(c, p, _)| *c == (a, r) && *p == o) {
                        Some((_, _, names)) => names.push(name),
                        None => pairs.push(((a, r), o, vec![name])),
                    },
                    None => seen.push((*hash, a, r)),
                }
            }
        }
    }
    let at = |(a, r): At| format!("{} (arm {:?})", arms[a].reps[r].dir.display(), arms[a].name);
    pairs
        .into_iter()
        .map(|(copy, original, names)| {
            format!(
                "{} has files with the same bytes as {}'s ({}): if they are copies, take them \
                 out, since each repetition must be a run of its own, or the deltas and \
                 intervals describe copies",
                at(copy),
                at(original),
                names.join(", ")
            )
        })
        .collect()
}

fn json(path: &Path, text: &str, rep: &mut Repetition) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        bad(
            path,
            format!(
                "invalid JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                meshbench_formats::json_message(&e)
            ),
        )
    })?;
    let schema = value
        .get("schema")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad(path, "a JSON document without a `schema` field"))?;
    if TRAFFICGEN.check(schema).is_ok() {
        rep.loads
            .push(read_summary(text).map_err(|e| bad(path, e.to_string()))?);
    } else if MESH_INSTALL.check(schema).is_ok() {
        if rep.install.is_some() {
            return Err(bad(path, "a second mesh-install summary in one repetition"));
        }
        rep.install = Some(
            meshbench_formats::from_json_text(text)
                .map_err(|e| bad(path, format!("not a mesh-install summary: {e}")))?,
        );
    } else {
        // Name what was found and what is read; a newer major version gets the schema error.
        let reason = TRAFFICGEN
            .check(schema)
            .err()
            .filter(|e| matches!(e, meshbench_formats::SchemaError::UnsupportedMajor { .. }))
            .or_else(|| {
                MESH_INSTALL.check(schema).err().filter(|e| {
                    matches!(e, meshbench_formats::SchemaError::UnsupportedMajor { .. })
                })
            })
            .map_or_else(
                || {
                    format!(
                        "schema {schema:?} is not one compare reads ({} or {})",
                        TRAFFICGEN.id, MESH_INSTALL.id
                    )
                },
                |e| e.to_string(),
            );
        return Err(bad(path, reason));
    }
    Ok(())
}
