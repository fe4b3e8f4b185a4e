#!/usr/bin/python3
"""anomaly_rate.py - candidate anomaly score, measured and not shipped (models/README.md):
the photo codec's bits per pixel against PNG and lossless WebP (Serra et al. 2020), held-out
full-size cats (cats-full 4750-) vs ../shared/data/dogs.

    /usr/bin/python3 bench/anomaly_rate.py MODEL N QUALITY   (e.g. models/photo.safetensors 80 100)
"""
import io, os, random, subprocess, sys
import numpy as np
from PIL import Image
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = os.path.join(ROOT, '..', 'shared', 'data')
model=sys.argv[1]; n=int(sys.argv[2]); q=sys.argv[3]
def feats(path):
    im=Image.open(path).convert('RGB')
    w,h=im.size
    b=io.BytesIO(); im.save(b,'PNG',optimize=True); png=len(b.getvalue())
    b=io.BytesIO(); im.save(b,'WEBP',lossless=True, quality=100, method=4); webpl=len(b.getvalue())
    im.save('/tmp/aec-anom-x.png')
    r=subprocess.run([ROOT+'/build/aec','compress','/tmp/aec-anom-x.png','-q',q,'-o','/tmp/aec-anom-x.aec','--model',model],capture_output=True)
    a=os.path.getsize('/tmp/aec-anom-x.aec')
    px=w*h
    return a*8/px, png*8/px, webpl*8/px
def auroc(neg,pos):
    neg=np.array(neg);pos=np.array(pos)
    return float(((pos[:,None]>neg[None,:]).mean()+0.5*(pos[:,None]==neg[None,:]).mean()))
cats=[f'{D}/cats-full/cat.{i}.jpg' for i in range(4750,4750+n)]
dogs=sorted(os.listdir(D+'/dogs'))[:n]
dogs=[D+'/dogs/'+f for f in dogs]
C=np.array([feats(p) for p in cats]); G=np.array([feats(p) for p in dogs])
for name,f in [('aec bpp',lambda X:X[:,0]),('png bpp',lambda X:X[:,1]),('aec-png',lambda X:X[:,0]-X[:,1]),('aec/png',lambda X:X[:,0]/X[:,1]),('aec-webpl',lambda X:X[:,0]-X[:,2]),('aec/webpl',lambda X:X[:,0]/X[:,2])]:
    print(name, round(auroc(f(C),f(G)),3))
