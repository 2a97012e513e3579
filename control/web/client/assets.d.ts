// Stylesheets imported from components are bundled into the page's CSS by Bun.
declare module "*.css"
