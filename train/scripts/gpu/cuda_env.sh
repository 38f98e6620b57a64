#!/usr/bin/env bash
#! Source this before running satkit's CUDA path on a machine whose CUDA libraries carry only
#! a versioned name that cudarc (built for CUDA 12.8, dynamic loading) does not try, such as
#! CUDA 13's libnvrtc.so.13 and libcublas.so.13: it links the unversioned names
#! (libnvrtc.so, libcublas.so) to the newest copy found in the toolkit or in the Python
#! wheels (nvidia-*), in a temporary folder put first on LD_LIBRARY_PATH, with the folders of
#! the libraries found (NVRTC loads its builtins library from there). It also links
#! libcuda.so to the driver's libcuda.so.1, so that a toolkit's stub libcuda.so (which
#! answers CUDA_ERROR_STUB_LIBRARY) is never the one loaded.
#!   . train/scripts/gpu/cuda_env.sh
_satkit_libdir=$(mktemp -d /tmp/satkit-cudalibs.XXXXXX)
_satkit_dirs=""
_drv=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}')
[ -z "$_drv" ] && _drv=$(find /usr/local/nvidia /usr/lib64 /usr/lib/x86_64-linux-gnu -name 'libcuda.so.1' 2>/dev/null | grep -v stubs | head -1)
if [ -n "$_drv" ]; then
  ln -sf "$_drv" "$_satkit_libdir/libcuda.so"
  echo "cuda_env: libcuda.so -> $_drv" >&2
else
  echo "cuda_env: the driver's libcuda.so.1 not found" >&2
fi
for _lib in nvrtc cublas cublasLt; do
  _found=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu \
      $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) \
      -name "lib${_lib}.so*" 2>/dev/null | grep -v -e alt -e builtins -e stubs | sort -V | tail -1)
  if [ -n "$_found" ]; then
    ln -sf "$_found" "$_satkit_libdir/lib${_lib}.so"
    _satkit_dirs="$_satkit_dirs:$(dirname "$_found")"
    echo "cuda_env: lib${_lib}.so -> $_found" >&2
  else
    echo "cuda_env: lib${_lib}.so not found" >&2
  fi
done
export LD_LIBRARY_PATH="$_satkit_libdir$_satkit_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _lib _found _satkit_dirs _drv
