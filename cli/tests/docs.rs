//! The README and docs/ hold what they promise: the README stays short (at most 200 lines),
//! every relative link in it and in docs/*.md names a file that exists, every page of docs/ is
//! on the README's map, and every `ukey ...` line of the README's `sh` blocks is a command
//! today's `ukey` accepts (its arguments parsed up to `--help`).

use std::path::{Path, PathBuf};
use std::process::Command;

const MAX_README_LINES: usize = 200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// README.md and every docs/*.md, sorted.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    let docs = repo().join("docs");
    let mut more: Vec<PathBuf> = std::fs::read_dir(&docs)
        .unwrap_or_else(|e| panic!("reading {}: {e}", docs.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    assert!(!more.is_empty(), "no pages in {}", docs.display());
    pages.extend(more);
    pages
}

/// Each line of `text` with its number (from 1) and whether it is inside a fenced code block
/// (the fence lines themselves count as inside), and the fence's info string there.
fn lines_with_fences(text: &str) -> Vec<(usize, &str, Option<&str>)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match fence {
                None => {
                    fence = Some(info.trim());
                    out.push((i + 1, line, fence));
                }
                Some(f) => {
                    out.push((i + 1, line, Some(f)));
                    fence = None;
                }
            }
            continue;
        }
        out.push((i + 1, line, fence));
    }
    out
}

/// The targets of the inline links `[text](target)` on one line.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // A title after the target ("path "title"") is not part of it.
        let target = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(target);
        rest = &after[end..];
    }
    targets
}

fn is_relative(target: &str) -> bool {
    !(target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
        || target.starts_with('#'))
}

#[test]
fn readme_is_at_most_200_lines() {
    let readme = read(&repo().join("README.md"));
    let n = readme.lines().count();
    assert!(n <= MAX_README_LINES, "README.md has {n} lines; at most {MAX_README_LINES}: move detail into docs/");
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let base = page.parent().unwrap();
        for (n, line, fence) in lines_with_fences(&text) {
            if fence.is_some() {
                continue;
            }
            for target in link_targets(line) {
                if !is_relative(target) {
                    continue;
                }
                let file = target.split('#').next().unwrap();
                checked += 1;
                if file.is_empty() || !base.join(file).exists() {
                    broken.push(format!("{}:{n}: ({target}) names no file: {line}", page.display()));
                }
            }
        }
    }
    assert!(checked > 0, "no relative links found: the link parser is broken");
    assert!(broken.is_empty(), "broken relative links:\n{}", broken.join("\n"));
}

#[test]
fn every_docs_page_is_on_the_readme_map() {
    let readme = read(&repo().join("README.md"));
    let linked: Vec<&str> = readme.lines().flat_map(link_targets).collect();
    let missing: Vec<String> = pages()
        .iter()
        .skip(1)
        .map(|p| format!("docs/{}", p.file_name().unwrap().to_string_lossy()))
        .filter(|rel| !linked.iter().any(|t| t.split('#').next() == Some(rel.as_str())))
        .collect();
    assert!(missing.is_empty(), "docs pages the README does not link: {missing:?}");
}

/// The part of a shell line before a `# comment`: a `#` at the start of a word, outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_space) = (false, false, true);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// The first command of a shell line: cut at the first `|`, `&&`, `;` or `>` outside quotes.
fn first_command(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '|' | ';' | '>' if !single && !double => return &line[..i],
            '&' if !single && !double && line[i..].starts_with("&&") => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The `ukey` command lines of the README's `sh` blocks: (line number, the line as written,
/// the words after `ukey`). A line ending in `\` continues on the next.
fn readme_commands() -> Vec<(usize, String, Result<Vec<String>, String>)> {
    let readme = read(&repo().join("README.md"));
    let lines = lines_with_fences(&readme);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (n, first, fence) = lines[i];
        i += 1;
        if fence != Some("sh") || first.trim_start().starts_with("```") {
            continue;
        }
        let mut line = first.trim().to_string();
        while line.ends_with('\\') && i < lines.len() && lines[i].2 == Some("sh") {
            line.pop();
            line.push(' ');
            line.push_str(lines[i].1.trim());
            i += 1;
        }
        if !line.starts_with("ukey ") {
            continue;
        }
        let command = first_command(strip_comment(&line)).trim();
        let words = match shlex::split(command) {
            Some(w) => Ok(w),
            None => Err(format!("not a shell command (quotes unbalanced?): {command}")),
        };
        out.push((n, first.to_string(), words));
    }
    out
}

#[test]
fn every_readme_ukey_command_parses() {
    let commands = readme_commands();
    assert!(!commands.is_empty(), "no `ukey ...` lines in the README's sh blocks");
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (n, line, words) in &commands {
        let mut words = match words {
            Ok(w) => w.clone(),
            Err(e) => {
                failures.push(format!("README.md line {n}: {e}\n  {line}"));
                continue;
            }
        };
        assert_eq!(words.first().map(String::as_str), Some("ukey"), "README.md line {n}: {line}");
        words.remove(0);
        words.push("--help".into());
        let out = Command::new(env!("CARGO_BIN_EXE_ukey"))
            .args(&words)
            .env("UKEY_HOME", home.path())
            .env_remove("UKEY_PIN")
            .current_dir(cwd.path())
            .output()
            .unwrap();
        if !out.status.success() || out.stdout.is_empty() {
            failures.push(format!(
                "README.md line {n}: `ukey {}` exited {} with {} bytes of help\n  {line}\n  {}",
                words.join(" "),
                out.status,
                out.stdout.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(failures.is_empty(), "README commands ukey does not accept:\n{}", failures.join("\n"));
}

#[test]
fn shell_lines_are_cut_as_the_shell_would() {
    assert_eq!(strip_comment(r#"ukey a "b # c" # d"#), r#"ukey a "b # c" "#);
    assert_eq!(strip_comment("ukey a#b"), "ukey a#b");
    assert_eq!(first_command("ukey a > f.pem"), "ukey a ");
    assert_eq!(first_command("ukey a 'x|y' | head"), "ukey a 'x|y' ");
    assert_eq!(first_command("ukey a && ukey b"), "ukey a ");
    assert_eq!(first_command("ukey a; b"), "ukey a");
    assert_eq!(link_targets("[a](b.md#c) and [d](https://e) [f](g \"t\")"), ["b.md#c", "https://e", "g"]);
}
