"""IR rewrites run before differentiation: they change the primal's IR (computing the same
values) into a shape the synthesizers handle. Analyses answer questions; these change IR."""
