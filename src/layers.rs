//! The dependency rule, checked: top-level modules form layers, each importing only the ones
//! beneath it, so the tree reads bottom-up and a change to a lower module never needs to know
//! about a higher one. The test reads every `crate::` path in `src/` (in `use` lines, groups
//! and inline paths) and fails on any cycle between top-level modules, naming the imports inside it,
//! and checks that the README's layout names every module in an order that is the layers.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    type Graph = BTreeMap<String, BTreeSet<String>>;

    /// The top-level module a file under `src/` belongs to.
    fn top_module(src: &Path, file: &Path) -> String {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a path");
        let name = first.as_os_str().to_string_lossy();
        name.trim_end_matches(".rs").to_owned()
    }

    /// The top-level modules that `text` names through `crate::`, including the members of
    /// `use crate::{a, b::c}` groups.
    fn named_modules(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Only the first segment of each top-level member of the group counts; the
                // group ends at its matching brace.
                let mut depth = 0;
                let mut start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            start = false;
                            names.insert(ident(&group[j..]));
                        }
                        _ => {}
                    }
                }
            } else {
                names.insert(ident(rest));
            }
        }
        names.retain(|n| !n.is_empty() && n != "self");
        names
    }

    fn graph() -> Graph {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = Graph::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("src is readable") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let top = top_module(&src, &path);
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    let deps = graph.entry(top.clone()).or_default();
                    deps.extend(named_modules(&text).into_iter().filter(|n| *n != top));
                }
            }
        }
        graph
    }

    fn reaches(graph: &Graph, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(at) = stack.pop() {
            for next in graph.get(at).into_iter().flatten() {
                if next == to {
                    return true;
                }
                if seen.insert(next.as_str()) {
                    stack.push(next);
                }
            }
        }
        false
    }

    /// The groups of modules that reach each other (each a cycle or several), with the
    /// imports inside each group, so the message says which lines to cut.
    fn tangles(graph: &Graph) -> Vec<(Vec<String>, Vec<String>)> {
        let mut placed = BTreeSet::new();
        let mut found = Vec::new();
        for a in graph.keys() {
            if placed.contains(a) {
                continue;
            }
            let group: Vec<String> = graph
                .keys()
                .filter(|b| *b == a || (reaches(graph, a, b) && reaches(graph, b, a)))
                .cloned()
                .collect();
            placed.extend(group.iter().cloned());
            if group.len() > 1 {
                let edges = group
                    .iter()
                    .flat_map(|from| {
                        graph[from]
                            .iter()
                            .filter(|to| group.contains(to))
                            .map(move |to| format!("{from} -> {to}"))
                    })
                    .collect();
                found.push((group, edges));
            }
        }
        found
    }

    /// The top-level modules in the order the README's layout section names them.
    fn readme_order() -> Vec<String> {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .expect("README.md");
        let layout = &readme[readme.find("## Layout").expect("a layout section")..];
        let mut order = Vec::new();
        for line in layout.lines() {
            for word in line.split([' ', ',']).filter(|w| w.starts_with("src/")) {
                let name = word["src/".len()..]
                    .trim_end_matches('/')
                    .trim_end_matches(".rs");
                if !order.iter().any(|n| n == name) {
                    order.push(name.to_owned());
                }
            }
        }
        order
    }

    #[test]
    fn the_readme_names_every_module_beneath_those_that_use_it() {
        let graph = graph();
        let order = readme_order();
        let missing: Vec<_> = graph.keys().filter(|m| !order.contains(m)).collect();
        assert!(
            missing.is_empty(),
            "the README's layout does not name {missing:?}"
        );
        let position = |m: &str| order.iter().position(|n| n == m);
        let mut upward = Vec::new();
        for (from, deps) in &graph {
            for to in deps {
                if let (Some(a), Some(b)) = (position(from), position(to))
                    && b > a
                {
                    upward.push(format!("{from} -> {to}"));
                }
            }
        }
        assert!(
            upward.is_empty(),
            "these imports point down the README's layout, which lists modules beneath the ones \
             that use them: {upward:?}"
        );
    }

    #[test]
    fn groups_and_paths_are_read() {
        let text = "use crate::{audit::AuditLog, clock::{Clock, SharedClock}, duration};\n\
                    let x = crate::http::client(); use crate::self_check;";
        let names: Vec<_> = named_modules(text).into_iter().collect();
        assert_eq!(
            names,
            ["audit", "clock", "duration", "http", "self_check"],
            "{names:?}"
        );
    }

    #[test]
    fn tangles_are_found() {
        let mut g = Graph::new();
        g.entry("a".into()).or_default().insert("b".into());
        g.entry("b".into()).or_default().insert("c".into());
        g.entry("c".into()).or_default().insert("a".into());
        g.entry("c".into()).or_default().insert("d".into());
        let found = tangles(&g);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, ["a", "b", "c"]);
        assert_eq!(found[0].1, ["a -> b", "b -> c", "c -> a"]);
    }

    #[test]
    fn no_module_imports_one_that_imports_it() {
        let graph = graph();
        assert!(
            graph.contains_key("s3") && graph.contains_key("grant"),
            "{graph:?}"
        );
        let found: Vec<String> = tangles(&graph)
            .iter()
            .map(|(group, edges)| {
                format!(
                    "{} import each other: {}",
                    group.join(", "),
                    edges.join(", ")
                )
            })
            .collect();
        assert!(
            found.is_empty(),
            "top-level modules import each other (a lower layer must not name a higher one):\n{}",
            found.join("\n")
        );
    }
}
