// Stylesheets the renderer imports for their side effect: esbuild bundles them into dashboard.css beside the script.

declare module '*.css';
