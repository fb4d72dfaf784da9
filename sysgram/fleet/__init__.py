"""Fleet training: Parquet recordings of many hosts -> one pooled profile per binary.

The domain work is pure functions the Dask tasks call (`partitions`, `summarize`,
`pooling`); `cluster` opens the Dask client and `training` runs the plan on it (or in
this process when the data is small). Nothing here prints.
"""
