//! `cargo xtask mcp-client`: the Python MCP SDK, the protocol's reference client, against
//! the built server's `/mcp` on a fresh embedded store, connecting as Claude Desktop or
//! the MCP inspector would: Streamable HTTP with an API key header, the `initialize`
//! handshake and the per-request `server/discover` lifecycle, `tools/list`, a read tool
//! that finds a seeded item and a propose tool whose proposal is stored and not run
//! (`xtask/mcp_client.py`).
//!
//! The SDK is installed into `target/mcp-client-venv` from PyPI on first use, pinned;
//! nothing is installed globally.

use anyhow::Context;

use crate::fuzz::python_venv;

/// The client's pinned version.
const MCP: &str = "mcp==2.3.0";

/// Runs the client's checks against a freshly started server.
pub fn run() -> anyhow::Result<()> {
    let venv = python_venv("mcp-client-venv", MCP).context(
        "the MCP client check needs Python 3 with venv and pip (on Debian: apt-get install \
         python3-venv)",
    )?;
    let server = crate::served::start(
        "mcp-client",
        "read,write,ingest,approve,metrics,scim,admin",
        &[],
    )?;
    server.check_with_python(&venv, "mcp_client.py", "the MCP client's checks")?;
    eprintln!("xtask: the MCP client connected, listed and called the tools");
    Ok(())
}
