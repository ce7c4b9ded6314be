# The four shipped Gaussian-residual models, sourced by train_cpu.sh and train_shipped.sh:
# ARGS[NAME] holds each run's own arguments; `names` is $ONLY (space-separated) or all four.
# An unknown name in ONLY exits with status 2.
declare -A ARGS=(
  [glyphs_pixel_column]="--dataset glyphs --basis pixel --order column"
  [glyphs_haar]="--dataset glyphs --basis wavelet --wavelet haar --order scale"
  [glyphs_dct]="--dataset glyphs --basis dct --order variance"
  [shapes_haar_residual]="--dataset shapes --basis wavelet --wavelet haar --order scale"
)
read -r -a names <<<"${ONLY:-glyphs_pixel_column glyphs_haar glyphs_dct shapes_haar_residual}"
for name in "${names[@]}"; do
  [[ -n "${ARGS[$name]:-}" ]] || { echo "unknown model $name (${!ARGS[*]})" >&2; exit 2; }
done
