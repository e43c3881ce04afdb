{
  description = "CFactory: the cockpit over PFactory, AIFactory and TFactory";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
      in
      {
        devShells.default = pkgs.mkShell {
          packages = with pkgs; [
            cargo
            rustc
            rustfmt
            clippy
            rust-analyzer
            cargo-nextest
            postgresql_16
            nodejs_20
            chromium
            pkg-config
          ];
          # The tests find PostgreSQL through DATABASE_URL; start one with
          #   initdb -D .pg && pg_ctl -D .pg -o '-k /tmp' start
          shellHook = ''
            export CFACTORY_DATA_DIR="$PWD/.cfactory"
          '';
        };
      });
}
