"""Seconds per SimCLR pretraining step (ResNet-18, CIFAR-10 sized, two views).

    python -m benchmarks.train_step_speed [--batch 128] [--steps 3] [--precision auto|all|float32|...]
        [--width 64] [--image_size 32] [--resnet_depth 18] [--profile]

The original README's CIFAR-10 pretraining command (`recipes.py`: LARS, lr
1.0, weight decay 1e-4, temperature 0.5, linear eval head, no blur), on
random inputs already in memory, so it measures the model step alone. It
prints the machine first: figures only compare on the same machine
(`benchmarks/side_by_side.py` runs the original next to ours).
`--precision=auto` (default) measures the precision `run.py --precision=auto`
would pick here; `all` measures float32 and, where they are native,
mixed_bfloat16 and mixed_float16. `--width 16` measures the quickstart's model
(`--resnet_base_width=16`). `original_step_speed.py` times the original's
step the same way (both through `step_profile.py`).

`--profile` also traces two steps with `tf.profiler` and prints where the
time goes: seconds per step by op type, summed over TensorFlow's executor
threads (ops can run two at a time, so the sum may exceed the step's wall
time), and the float32 matmul rate of this machine (GFLOP/s, 4096x4096), the
bound for the convolutions that dominate the step.
"""
import argparse

from benchmarks import step_profile
from tf2 import hardware, precision as precision_lib


def seconds_per_step(precision, batch, steps, width=64, size=32, profile=False, depth=18):
  run_steps = step_profile.pretraining_steps(batch, precision=precision, resnet_base_width=width,
                                             image_size=size, resnet_depth=depth)
  per_step = step_profile.seconds_per_step(run_steps, steps)
  if profile:
    step_profile.profile_ops(run_steps, precision)
  return per_step


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--precision', default='auto')
  parser.add_argument('--width', type=int, default=64, help='--resnet_base_width')
  parser.add_argument('--image_size', type=int, default=32)
  parser.add_argument('--resnet_depth', type=int, default=18,
                      help='e.g. 50 with --image_size 224 --batch 16 (ImageNet stem from 33 px)')
  parser.add_argument('--profile', action='store_true',
                      help='print op time by type and the matmul rate')
  args = parser.parse_args()
  hw = hardware.detect()
  print(hardware.describe(hw), flush=True)
  if args.precision == 'all':
    precisions = (['float32'] + (['mixed_bfloat16'] if precision_lib.native_bf16(hw)[0] else [])
                  + (['mixed_float16'] if precision_lib.native_float16(hw)[0] else []))
  else:
    choice = precision_lib.choose(args.precision, hw)
    print(choice.message, flush=True)
    precisions = [choice.precision]
  if args.profile:
    print(f'float32 matmul 4096x4096: {step_profile.matmul_gflops():.0f} GFLOP/s')
  for precision in precisions:
    s = seconds_per_step(precision, args.batch, args.steps, args.width, args.image_size,
                         args.profile, args.resnet_depth)
    print(f'{precision:>15}: {s:.2f} s/step, {args.batch / s:.1f} images/s = '
          f'{2 * args.batch / s:.1f} views/s (ResNet-{args.resnet_depth}, batch {args.batch}, '
          f'two views, width {args.width}, {args.image_size} px)')

if __name__ == '__main__':
  main()
