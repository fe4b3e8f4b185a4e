#!/usr/bin/python3
"""anomaly_latent.py - candidate anomaly score, measured and not shipped (models/README.md):
a Gaussian over the default model's latent (through a local aecd), fitted on cats/
thumbnails 10000-10799, held-out full-size cats 4500-4799 vs 300 dogs.

    /usr/bin/python3 bench/anomaly_latent.py
"""
import os, sys, json, subprocess, time, urllib.request, io
import io, os, random, subprocess, sys
import numpy as np
from PIL import Image
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = os.path.join(ROOT, '..', 'shared', 'data')
port=18777
p=subprocess.Popen([ROOT+'/build/aecd','--models',ROOT+'/models','--port',str(port),'--log-level','warn'])
time.sleep(2)
def latent(path, model='default'):
    im=Image.open(path).convert('RGB'); b=io.BytesIO(); im.save(b,'PNG')
    req=urllib.request.Request(f'http://127.0.0.1:{port}/encode?model={model}',data=b.getvalue(),headers={'Content-Type':'image/png'})
    return np.array(json.load(urllib.request.urlopen(req))['latent'],dtype=np.float64)
def auroc(neg,pos):
    neg=np.array(neg);pos=np.array(pos)
    return float(((pos[:,None]>neg[None,:]).mean()+0.5*(pos[:,None]==neg[None,:]).mean()))
try:
    # calibration: cats/ thumbnails never trained on? default was trained on cats/ first 8192 + cats-full 0..4499 aug; use cats/ 10000-11999 
    cal=[f'{D}/cats/cat.{i}.jpg' for i in range(10000,10800)]
    test_c=[f'{D}/cats-full/cat.{i}.jpg' for i in range(4500,4800)]
    dogs=[D+'/dogs/'+f for f in sorted(os.listdir(D+'/dogs'))[:300]]
    L=np.array([latent(f) for f in cal]); C=np.array([latent(f) for f in test_c]); G=np.array([latent(f) for f in dogs])
    print(L.shape)
    mu=L.mean(0); X=L-mu
    for k in [16,32,64,128]:
        U,S,Vt=np.linalg.svd(X,full_matrices=False)
        V=Vt[:k]; var=(S[:k]**2)/(len(L)-1)
        def md(Z): return (((Z-mu)@V.T)**2/var).sum(1)
        def resid(Z):
            Zc=Z-mu; return ((Zc-(Zc@V.T)@V)**2).sum(1)
        print(k, 'mahal', round(auroc(md(C),md(G)),3), 'resid', round(auroc(resid(C),resid(G)),3))
    for lam in [0.1,1.0]:
        cov=X.T@X/(len(L)-1); cov+= lam*np.mean(np.diag(cov))*np.eye(cov.shape[0])
        P=np.linalg.inv(cov)
        md=lambda Z: np.einsum('ij,jk,ik->i',Z-mu,P,Z-mu)
        print('full shrink',lam, round(auroc(md(C),md(G)),3))
finally:
    p.terminate()
