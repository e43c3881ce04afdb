//! Embeds `migrations/postgres` into the crate (see `migrations/embed.rs`).

#[path = "../../../migrations/embed.rs"]
mod embed;

fn main() {
    embed::write("../../../migrations/postgres");
}
