"""Synthetic studies: phantom chest radiographs written as DICOM files, for `radstream demo`,
`bench` and `chaos` (a stand-in PACS), and rendered for training (models/training).
"""
