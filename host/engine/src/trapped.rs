//! The imports a limits profile links to traps (`crate::Profile::trapped_imports`): an
//! interface a component imports but must never use, such as the `wasi:sockets` that CPython's
//! standard library imports whether a plugin opens a socket or not.

use wasmtime::Result;
use wasmtime::component::Linker;

use crate::sandbox::StoreState;

/// The resource type of every resource of a trapped interface: none is ever created, because
/// every function that could create one traps.
struct NotGranted;

/// Links the imports named in `trapped` (full names, with versions) to functions that trap,
/// naming the function: the profile's `trapped_imports` (`crate::Profile`). Nothing is granted:
/// the interface exists so that the component links, and a call fails its customer-day.
///
/// A component may import one interface at several patch versions (componentize-py's CPython
/// imports `wasi:sockets/tcp` at 0.2.0 and at 0.2.9); the linker resolves all of them to one
/// definition by semver, so each interface is defined once, at the highest version imported.
pub(crate) fn link_traps(
    linker: &mut Linker<StoreState>,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    trapped: &[&str],
) -> Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;

    let version = |name: &str| -> (u64, u64, u64) {
        let v = name.split_once('@').map_or("", |(_, v)| v);
        let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
        (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        )
    };
    let mut highest: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for name in trapped {
        let interface = name.split_once('@').map_or(*name, |(n, _)| n);
        let slot = highest.entry(interface).or_insert(name);
        if version(name) > version(slot) {
            *slot = name;
        }
    }
    let ty = component.component_type();
    // A trapped interface uses WASI's own resources (`wasi:sockets/tcp` takes `pollable`s and
    // streams of `wasi:io`): those are the resources the sandbox already links, and must be
    // linked as theirs; the interface's own resources (`tcp-socket`, `network`) are not.
    let io = |interface: &str, resource: &str| -> Option<ResourceType> {
        Some(match (interface, resource) {
            ("wasi:io/poll", "pollable") => ResourceType::host::<wasmtime_wasi::p2::DynPollable>(),
            ("wasi:io/streams", "input-stream") => {
                ResourceType::host::<wasmtime_wasi::p2::DynInputStream>()
            }
            ("wasi:io/streams", "output-stream") => {
                ResourceType::host::<wasmtime_wasi::p2::DynOutputStream>()
            }
            ("wasi:io/error", "error") => ResourceType::host::<wasmtime_wasi::p2::IoError>(),
            _ => return None,
        })
    };
    let mut shared: Vec<(ResourceType, ResourceType)> = Vec::new();
    for (name, import) in ty.imports(engine) {
        let interface = name.split_once('@').map_or(name, |(n, _)| n);
        if let ComponentItem::ComponentInstance(instance) = import.ty {
            for (export, item) in instance.exports(engine) {
                if let (ComponentItem::Resource(r), Some(host)) = (item.ty, io(interface, export)) {
                    shared.push((r, host));
                }
            }
        }
    }
    for name in highest.values() {
        let Some(ComponentItem::ComponentInstance(instance)) =
            ty.get_import(engine, name).map(|e| e.ty)
        else {
            continue;
        };
        let mut li = linker.instance(name)?;
        for (export, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{name}#{export}");
                    li.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!(
                            "the plugin called {what}, which is not granted: a plugin has no \
                             network (the interface is linked only so that the component loads)"
                        )
                    })?;
                }
                ComponentItem::Resource(r) => {
                    let host = shared
                        .iter()
                        .find(|(of_component, _)| *of_component == r)
                        .map_or(ResourceType::host::<NotGranted>(), |(_, host)| *host);
                    li.resource(export, host, |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
