"""Pure tensor maths, no model: turning angles and length-to-chord (:mod:`~tlgeom.geometry.curvature`),
LayerNorm/RMSNorm spheres and ellipsoids (:mod:`~tlgeom.geometry.sphere`), pullback metrics,
Christoffel symbols, curvature and geodesics (:mod:`~tlgeom.geometry.riemann`), diffusion-map
Laplacians and heat kernels (:mod:`~tlgeom.geometry.heat`). Everything in float64."""
