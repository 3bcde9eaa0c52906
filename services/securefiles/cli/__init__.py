"""The `securefiles` command (client side only, except `up` and `serve`)."""
