//! redb persistence of channels, transactions, signatures, forks, the own-signature log and the
//! chain cursor.
