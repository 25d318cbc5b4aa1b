//! Test fixture: a component for the `heatbill-fixture:other/greeter` world, not for
//! `heatbill:rules`. Loading it as a plugin must fail with a message that names the expected
//! world.

#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "greeter" });
}

/// The greeter.
pub struct Greeter;

impl bindings::Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
const _: () = {
    bindings::export!(Greeter with_types_in bindings);
};
