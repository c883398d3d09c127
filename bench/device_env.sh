# Source this in a checkout of the repository on a machine where csdformer is not installed (the
# GPU machine): it builds the package as pyproject's package-dir maps it (csdformer.quantize =
# quantize/, ...) out of symbolic links under $SHIM (default /tmp/csdformer-shim) and puts it on
# PYTHONPATH, so that `python3 -m csdformer` and the bench scripts import this tree.
#
#     . bench/device_env.sh && python3 bench/train_on_budget.py ...
SHIM=${SHIM:-/tmp/csdformer-shim}
_root=$(pwd)
rm -rf "$SHIM" && mkdir -p "$SHIM/csdformer"
for _f in "$_root"/csdformer/*; do ln -s "$_f" "$SHIM/csdformer/"; done
for _p in artifact datasets quantize sim hw boards firmware; do ln -s "$_root/$_p" "$SHIM/csdformer/$_p"; done
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
unset _root _f _p
