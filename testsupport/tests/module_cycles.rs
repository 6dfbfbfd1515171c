//! No module cycles in any crate of the workspace: within a crate, a module that uses another
//! (a `use` path, or a `crate::`/`super::`/`self::`/child-module path in its code) never has
//! that one use it back, directly or round a ring. A parent re-exporting a child's item uses
//! the child, so shared pieces live in a module of their own that both use.
//!
//! The crates and their roots come from `cargo metadata`; the module tree and the paths from
//! the sources, parsed with syn. Test code (`#[cfg(test)]` items) does not count. Paths inside
//! macro invocations are not parsed (`format!`, `tracing::warn!`): those edges are not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use syn::visit::Visit;

type ModPath = Vec<String>;

/// One crate's modules: each module's file items, and the modules each one uses.
#[derive(Default)]
struct Crate {
    modules: BTreeMap<ModPath, ()>,
    uses: BTreeMap<ModPath, BTreeSet<ModPath>>,
    /// Raw paths per module, resolved once every module is known.
    raw: Vec<(ModPath, Vec<String>)>,
}

/// `#[cfg(test)]`, or `#[cfg(all(test, ...))]`: compiled for tests only.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    fn test_only(m: &syn::Meta) -> bool {
        match m {
            syn::Meta::Path(p) => p.is_ident("test"),
            syn::Meta::List(l) if l.path.is_ident("all") => l
                .parse_args_with(syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
                .is_ok_and(|all| all.iter().any(test_only)),
            _ => false,
        }
    }
    attrs.iter().any(|a| a.path().is_ident("cfg") && a.parse_args::<syn::Meta>().is_ok_and(|m| test_only(&m)))
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find(|a| a.path().is_ident("path")).and_then(|a| match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Every path a `use` tree names, as segments.
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut v = prefix.clone();
            if n.ident != "self" {
                v.push(n.ident.to_string());
            }
            out.push(v);
        }
        syn::UseTree::Rename(r) => {
            let mut v = prefix.clone();
            if r.ident != "self" {
                v.push(r.ident.to_string());
            }
            out.push(v);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

/// The paths used by one module's own items (child modules are walked on their own).
struct Paths<'a> {
    out: &'a mut Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        use_paths(&u.tree, &mut Vec::new(), self.out);
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test_only(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.segments.len() > 1 && p.leading_colon.is_none() {
            self.out.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, p);
    }
}

/// Walk the module in `file` (items `items`, named `path`), whose children live in `dir`.
fn walk(krate: &mut Crate, path: ModPath, items: &[syn::Item], dir: &Path) {
    krate.modules.insert(path.clone(), ());
    let mut raw = Vec::new();
    let mut paths = Paths { out: &mut raw };
    for item in items {
        paths.visit_item(item);
    }
    krate.raw.extend(raw.into_iter().map(|p| (path.clone(), p)));
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if is_test_only(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        let mut child = path.clone();
        child.push(name.clone());
        match &m.content {
            Some((_, inner)) => walk(krate, child, inner, &dir.join(&name)),
            None => {
                let file = match path_attr(&m.attrs) {
                    Some(p) => dir.join(p),
                    None => [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")]
                        .into_iter()
                        .find(|f| f.exists())
                        .unwrap_or_else(|| panic!("module {name} of {} has no file", dir.display())),
                };
                let parsed = parse(&file);
                let child_dir = if file.file_name().is_some_and(|f| f == "mod.rs") {
                    file.parent().unwrap().to_path_buf()
                } else {
                    file.with_extension("")
                };
                walk(krate, child, &parsed.items, &child_dir);
            }
        }
    }
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The deepest module of this crate that `segs`, seen from `from`, names; `None` for another
/// crate's path (or a local item such as `Self::x`).
fn resolve(krate: &Crate, from: &ModPath, segs: &[String]) -> Option<ModPath> {
    let (mut at, mut rest): (ModPath, &[String]) = match segs.first()?.as_str() {
        "crate" => (Vec::new(), &segs[1..]),
        "self" | "super" => {
            let mut at = from.clone();
            let mut i = 0;
            while i < segs.len() && (segs[i] == "self" || segs[i] == "super") {
                if segs[i] == "super" {
                    at.pop();
                }
                i += 1;
            }
            (at, &segs[i..])
        }
        first => {
            let mut child = from.clone();
            child.push(first.to_string());
            if !krate.modules.contains_key(&child) {
                return None;
            }
            (from.clone(), segs)
        }
    };
    while let Some((next, tail)) = rest.split_first() {
        let mut deeper = at.clone();
        deeper.push(next.clone());
        if !krate.modules.contains_key(&deeper) {
            break;
        }
        (at, rest) = (deeper, tail);
    }
    Some(at)
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(uses: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct T<'a> {
        uses: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on: BTreeSet<&'a ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn go<'a>(t: &mut T<'a>, v: &'a ModPath) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.uses.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                go(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut ring = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                ring.push(w.clone());
                if w == v {
                    break;
                }
            }
            if ring.len() > 1 {
                ring.sort();
                t.out.push(ring);
            }
        }
    }
    let mut t = T {
        uses,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in uses.keys() {
        if !t.index.contains_key(v) {
            go(&mut t, v);
        }
    }
    t.out
}

fn name(m: &ModPath) -> String {
    std::iter::once("crate").chain(m.iter().map(String::as_str)).collect::<Vec<_>>().join("::")
}

/// The module graph of the crate rooted at `root` (lib.rs or main.rs).
fn graph(root: &Path) -> Crate {
    let mut krate = Crate::default();
    walk(&mut krate, Vec::new(), &parse(root).items, root.parent().unwrap());
    for (from, segs) in std::mem::take(&mut krate.raw) {
        if let Some(to) = resolve(&krate, &from, &segs) {
            if to != from {
                krate.uses.entry(from.clone()).or_default().insert(to);
            }
        }
        krate.uses.entry(from).or_default();
    }
    krate
}

/// The library and binary roots of the workspace's packages.
fn roots() -> Vec<(String, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut roots = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            let kinds: Vec<&str> = target["kind"].as_array().unwrap().iter().filter_map(|k| k.as_str()).collect();
            if kinds.iter().any(|k| matches!(*k, "lib" | "cdylib" | "rlib" | "bin")) {
                let name = format!("{} ({})", target["name"].as_str().unwrap(), kinds.join(","));
                roots.push((name, PathBuf::from(target["src_path"].as_str().unwrap())));
            }
        }
    }
    roots
}

#[test]
fn no_crate_of_the_workspace_has_a_module_cycle() {
    let mut found = Vec::new();
    let mut counted = 0;
    for (target, root) in roots() {
        let krate = graph(&root);
        counted += krate.modules.len();
        for ring in cycles(&krate.uses) {
            let members: BTreeSet<&ModPath> = ring.iter().collect();
            let edges: Vec<String> = ring
                .iter()
                .flat_map(|m| {
                    krate.uses[m]
                        .iter()
                        .filter(|t| members.contains(t))
                        .map(move |t| format!("{} -> {}", name(m), name(t)))
                })
                .collect();
            found.push(format!(
                "{target}: {}\n    {}",
                ring.iter().map(name).collect::<Vec<_>>().join(", "),
                edges.join("\n    ")
            ));
        }
    }
    assert!(counted > 100, "the workspace's modules were not found ({counted})");
    assert!(found.is_empty(), "{} module cycle(s):\n{}", found.len(), found.join("\n"));
}

/// The checker sees a cycle where there is one, and none in a tree.
#[test]
fn a_ring_of_modules_is_found_and_a_tree_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let write = |p: &str, text: &str| {
        let f = dir.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    };
    write("lib.rs", "mod a;\nmod b;\npub use a::A;\n");
    write("a.rs", "pub struct A;\npub fn f() { crate::b::g() }\n");
    write(
        "b.rs",
        "pub fn g() {}\n#[cfg(test)]\nmod tests { use crate::a::A; }\n#[cfg(all(test, unix))]\nfn t() { crate::a::f() }\n",
    );
    assert!(cycles(&graph(&dir.path().join("lib.rs")).uses).is_empty(), "a tree, and test code does not count");
    write("b.rs", "use super::a;\npub fn g() { let _ = a::A; }\n");
    let rings = cycles(&graph(&dir.path().join("lib.rs")).uses);
    assert_eq!(rings, [[vec!["a".to_string()], vec!["b".to_string()]]], "a and b use each other");
    write("b.rs", "pub fn g() { let _ = super::A; }\n");
    let rings = cycles(&graph(&dir.path().join("lib.rs")).uses);
    assert_eq!(rings.len(), 1, "b uses the root, which re-exports a, which uses b: {rings:?}");
    assert_eq!(rings[0].len(), 3);
}
