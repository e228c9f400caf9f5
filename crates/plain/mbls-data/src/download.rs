//! Downloads with MD5 check and resume.
