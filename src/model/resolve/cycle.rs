//! Finding a dependency cycle, with its path, by an iterative depth-first
//! search (no recursion, so long chains cannot overflow the stack), and
//! describing it as a diagnostic.

use std::collections::HashMap;

use crate::diagnostic::Diagnostic;
use crate::model::{Address, Resource, Stack, template};

/// The first cycle found, as `path[0]` depends on `path[1]` … depends on
/// `path[0]`; `None` when the resources form a DAG. Dependencies on
/// addresses not in `resources` are ignored.
pub(super) fn find_cycle(resources: &[Resource]) -> Option<Vec<Address>> {
    let index: HashMap<&Address, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (&r.address, i))
        .collect();
    let deps: Vec<Vec<usize>> = resources
        .iter()
        .map(|r| {
            r.depends_on
                .iter()
                .filter_map(|d| index.get(d).copied())
                .collect()
        })
        .collect();
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut color = vec![WHITE; resources.len()];
    // The current path: (node, index of its next dependency to visit).
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..resources.len() {
        if color[root] != WHITE {
            continue;
        }
        color[root] = GREY;
        stack.push((root, 0));
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match color[dep] {
                    WHITE => {
                        color[dep] = GREY;
                        stack.push((dep, 0));
                    }
                    GREY => {
                        let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        return Some(
                            stack[from..]
                                .iter()
                                .map(|&(n, _)| resources[n].address.clone())
                                .collect(),
                        );
                    }
                    _ => {}
                }
            } else {
                color[node] = BLACK;
                stack.pop();
            }
        }
    }
    None
}

/// "dependency cycle: a → b → a", with a label on each resource of the
/// cycle pointing at what makes it depend on the next.
pub(super) fn diagnostic(stack: &Stack, path: &[Address]) -> Diagnostic {
    let mut shown: Vec<String> = path.iter().map(ToString::to_string).collect();
    if let Some(first) = shown.first().cloned() {
        shown.push(first);
    }
    let mut d = Diagnostic::error(
        "cairn::dependency_cycle",
        format!("dependency cycle: {}", shown.join(" → ")),
    )
    .in_file(&stack.source)
    .help("resources are created in dependency order, so a cycle can never be applied: remove one of the references or `depends_on` entries");
    let members: std::collections::HashSet<&Address> = path.iter().collect();
    let by_address: HashMap<&Address, &Resource> = stack
        .resources
        .iter()
        .filter(|r| members.contains(&r.address))
        .map(|r| (&r.address, r))
        .collect();
    for (i, address) in path.iter().enumerate() {
        let next = &path[(i + 1) % path.len()];
        let Some(r) = by_address.get(address) else {
            continue;
        };
        // The attribute holding the reference, else the resource itself
        // (the dependency comes from `depends_on`).
        let attr = r.attrs.iter().find(|(_, v)| {
            let mut hit = false;
            template::for_each_ref(v, &mut |reference| {
                if let template::Ref::Resource { address, .. } = reference {
                    hit |= address == next;
                }
            });
            hit
        });
        let (span, text) = match attr.and_then(|(k, _)| r.attr_spans.get(k).map(|s| (k, s))) {
            Some((k, s)) => (s.clone(), format!("`{address}` uses `{next}` in `{k}`")),
            None => (r.span.clone(), format!("`{address}` depends on `{next}`")),
        };
        d = d.label(span, text);
    }
    d
}
