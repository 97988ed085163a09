//! `sqlx::migrate!` embeds the migrations at compile time but cannot tell cargo to watch them on
//! stable Rust: without this, a new or changed migration file is not picked up until some source
//! file of the crate changes.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
