//! Empty: this package only names the crate whose C headers integrations/godot/build.sh uses.
