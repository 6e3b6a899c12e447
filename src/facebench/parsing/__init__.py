"""Face parsing for real video: a BiSeNet face parser that loads the public face-parsing checkpoint
(`79999_iter.pth`, zllrunning/face-parsing.PyTorch) from a path the user gives, and the masks it
makes for a video dataset, merged to the 12 classes (`facebench parse`)."""

from facebench.parsing.bisenet import BiSeNet, load_face_parser, parse_frames
from facebench.parsing.masks import write_masks

__all__ = ["BiSeNet", "load_face_parser", "parse_frames", "write_masks"]
