//! SSH transport over russh: one connection per host, reused for the whole run.
