"""`securefiles web`: the console for people (files, pipeline permissions, approvals and checks,
keys and audit) served as HTML. It calls the services as the signed-in person, holds no
privilege of its own and never receives a file's contents."""
