"""Rendering mesh sequences to video with sound, headless: facebench render and facebench animate."""
