"""The seed project's approach, faithfully: the peer the core benchmarks compare against.

pandas load, dropna, the seed's features, StandardScaler, KMeans(6, n_init=10),
elbow over k=1..10 and full silhouette over k=2..10 (scikit-learn defaults).
Run as a script (`python benchmarks/baseline_seed.py FILE`) to time it as a whole process.
"""
import sys
import time

import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

FEATURES = ["Age", "Income", "Total_Spending", "NumWebPurchases", "NumStorePurchases", "NumWebVisitsMonth", "Recency"]


def prepare(path):
    df = pd.read_csv(path, sep="\t")
    df = df.dropna()
    df["Age"] = 2026 - df["Year_Birth"]
    df["Total_Children"] = df["Kidhome"] + df["Teenhome"]
    df["Total_Spending"] = df[["MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts",
                               "MntSweetProducts", "MntGoldProds"]].sum(axis=1)
    return df


def fit(df):
    X = StandardScaler().fit_transform(df[FEATURES])
    model = KMeans(n_clusters=6, n_init=10, random_state=42).fit(X)
    return X, model


def sweep(X):
    inertia = [KMeans(n_clusters=k, n_init=10, random_state=42).fit(X).inertia_ for k in range(1, 11)]
    silhouettes = []
    for k in range(2, 11):
        labels = KMeans(n_clusters=k, n_init=10, random_state=42).fit_predict(X)
        silhouettes.append(silhouette_score(X, labels))
    return inertia, silhouettes


if __name__ == "__main__":
    t = time.perf_counter()
    X, _ = fit(prepare(sys.argv[1]))
    inertia, sil = sweep(X)
    best = 2 + max(range(len(sil)), key=sil.__getitem__)
    print(f"best silhouette k={best}; {time.perf_counter() - t:.2f}s after imports")
