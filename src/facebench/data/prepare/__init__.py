"""Converters from official raw releases into the FaceFormer format facebench reads."""

from facebench.data.prepare.vocaset import prepare_vocaset

PREPARERS = {"vocaset": prepare_vocaset}
