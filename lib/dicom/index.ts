// DICOM input: a bounds-checked Part 10 reader, the codecs of the encapsulated transfer syntaxes and the
// MIMIC-CXR-JPG conversion to 8 bits (see image.ts).
export { decodeDicom, equalizeHist, minMaxTo8Bit, isLateralView, type DicomOptions, type DicomInfo, type DicomImage } from './image.js';
export { isDicom, readDicom, TRANSFER_SYNTAX, type DicomFile, type DicomDataSet, type DicomElement } from './parse.js';
