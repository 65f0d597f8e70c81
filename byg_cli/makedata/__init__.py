"""make-data: unpaired edit tuples from a VLM over a folder of images, and styled captions for video clips
(paper, appendix D)."""
