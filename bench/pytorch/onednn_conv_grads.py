"""Input gradients of convolutions in float32 against float64 in this PyTorch (Debian's python3-torch, its own oneDNN):
the 450-case subset of `adp-bench onednn-ops` quoted in docs/BENCHMARKS.md. Usage: /usr/bin/python3 onednn_conv_grads.py
"""
import torch, itertools, sys
torch.set_num_threads(1)
print(torch.__version__, torch.backends.mkldnn.is_available(), torch.backends.mkldnn.enabled)
g=torch.Generator().manual_seed(3)
bad=0; n=0
for ci,co in itertools.product([1,3,8,16,32,48],[1,3,8,16,32]):
  for (k,d,s) in [(3,1,1),(3,2,1),(5,1,1),(3,1,2),(1,1,1)]:
    for size in [7,28,32]:
      x=torch.randn(8,ci,size,size,generator=g); w=torch.randn(co,ci,k,k,generator=g)
      x32=x.clone().requires_grad_(); y=torch.nn.functional.conv2d(x32,w,stride=s,padding=d*(k//2),dilation=d)
      v=torch.randn(y.shape,generator=g)
      g32,=torch.autograd.grad((y*v).sum(),[x32])
      x64=x.double().requires_grad_(); g64,=torch.autograd.grad((torch.nn.functional.conv2d(x64,w.double(),stride=s,padding=d*(k//2),dilation=d)*v.double()).sum(),[x64])
      err=((g32.double()-g64).abs().max()/g64.abs().max()).item()
      n+=1
      if not err<1e-4: bad+=1; print(ci,co,k,d,s,size,err)
print("cases",n,"bad",bad)
