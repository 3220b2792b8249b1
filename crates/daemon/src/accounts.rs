//! Creating a daemon's home (`entente init`) and adding accounts to it (`entente account`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use entente_types::{Address, B256, LocalSigner, Signer as _};

use crate::config::{AccountConfig, ApiConfig, CONFIG_FILE, ChainConfig, DaemonConfig, valid_account_name};
use crate::keystore::{self, KeyFile, ScryptParams, SecretKey};
use crate::password::PasswordSource;

/// Where a new account's key comes from.
#[derive(Debug)]
pub enum KeyOrigin {
    /// A fresh random key.
    Generate,
    /// A key file another tool wrote (geth, `cast wallet`, `eth-account`): copied as it is, after
    /// checking its password opens it.
    KeyFile(PathBuf),
    /// A raw hex key read from standard input (never from the command line).
    HexOnStdin,
}

/// A new account's settings.
#[derive(Debug)]
pub struct NewAccount {
    /// Its name.
    pub name: String,
    /// Its key.
    pub origin: KeyOrigin,
    /// The cost of the key file's derivation (new and raw keys only).
    pub kdf: ScryptParams,
    /// libp2p listen addresses.
    pub listen: Vec<String>,
    /// Bootstrap nodes.
    pub bootstrap: Vec<String>,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Key file trouble.
    #[error(transparent)]
    Keystore(#[from] keystore::KeystoreError),
    /// Password trouble.
    #[error(transparent)]
    Password(#[from] crate::password::PasswordError),
    /// Configuration trouble.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A file or directory could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A refused request.
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AccountError + '_ {
    move |source| AccountError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn private_dir(path: &Path) -> Result<(), AccountError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(path).map_err(io(path))
}

fn random_key() -> SecretKey {
    loop {
        let mut b = [0u8; 32];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut b).expect("the operating system's random generator is unavailable");
        let key = SecretKey::new(B256::from(b));
        zeroize::Zeroize::zeroize(&mut b);
        if LocalSigner::from_bytes(key.expose()).is_ok() {
            return key;
        }
    }
}

/// Makes a new home: the configuration, the API token and the first account. Refuses a home that
/// has a configuration already.
pub fn init(
    home: &Path,
    chain: ChainConfig,
    api: ApiConfig,
    account: NewAccount,
    passwords: &PasswordSource,
) -> Result<DaemonConfig, AccountError> {
    if home.join(CONFIG_FILE).exists() {
        return Err(AccountError::Refused(format!(
            "{} exists: this home is set up already (add an account with `entente account new`)",
            home.join(CONFIG_FILE).display()
        )));
    }
    private_dir(home)?;
    let mut config = DaemonConfig {
        chain,
        api,
        accounts: Vec::new(),
        home: home.to_path_buf(),
    };
    let token_path = config.resolve(&config.api.token_file);
    if !token_path.exists() {
        let mut t = [0u8; 32];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut t).expect("the operating system's random generator is unavailable");
        let mut f = crate::files::create_private(&token_path).map_err(io(&token_path))?;
        f.write_all(hex::encode(t).as_bytes()).map_err(io(&token_path))?;
    }
    add_account(&mut config, account, passwords)?;
    Ok(config)
}

/// Adds an account to `config` (writing its key file and saving the configuration); its address.
pub fn add_account(
    config: &mut DaemonConfig,
    account: NewAccount,
    passwords: &PasswordSource,
) -> Result<Address, AccountError> {
    if !valid_account_name(&account.name) {
        return Err(AccountError::Refused(format!(
            "account name {:?}: use 1 to 32 of a-z, 0-9, - and _",
            account.name
        )));
    }
    if config.accounts.iter().any(|a| a.name == account.name) {
        return Err(AccountError::Refused(format!(
            "an account named {:?} exists",
            account.name
        )));
    }
    let what = format!("account {:?}", account.name);
    let file = match &account.origin {
        KeyOrigin::Generate => {
            let password = passwords.new_password(&what)?;
            keystore::encrypt(random_key().expose(), password.as_bytes(), account.kdf)?
        }
        KeyOrigin::HexOnStdin => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .map_err(io(Path::new("standard input")))?;
            let bytes = zeroize::Zeroizing::new(
                hex::decode(line.trim().trim_start_matches("0x"))
                    .map_err(|_| AccountError::Refused("standard input holds no hex key".into()))?,
            );
            if bytes.len() != 32 {
                return Err(AccountError::Refused("a key is 32 bytes (64 hex digits)".into()));
            }
            let key = SecretKey::new(B256::from_slice(&bytes));
            let password = passwords.new_password(&what)?;
            keystore::encrypt(key.expose(), password.as_bytes(), account.kdf)?
        }
        KeyOrigin::KeyFile(path) => {
            let file = KeyFile::read(path)?;
            let password = passwords.existing(&format!("key file {}", path.display()))?;
            let key = keystore::decrypt(&file, password.as_bytes())?;
            let mut file = file;
            if file.address.is_none() {
                let signer =
                    LocalSigner::from_bytes(key.expose()).map_err(|_| keystore::KeystoreError::InvalidKey)?;
                file.address = Some(hex::encode(signer.address()));
            }
            file
        }
    };
    let address = file
        .address()
        .ok_or_else(|| AccountError::Refused("the key file names no address".into()))?;
    if let Some(other) = config.accounts.iter().find(|a| a.address == address) {
        return Err(AccountError::Refused(format!(
            "account {:?} has this key already",
            other.name
        )));
    }
    let keys = config.home.join("keys");
    private_dir(&keys)?;
    let keystore = PathBuf::from("keys").join(format!("{}.json", account.name));
    file.write_new(&config.resolve(&keystore))?;
    config.accounts.push(AccountConfig {
        name: account.name.clone(),
        address,
        keystore,
        password_file: None,
        data_dir: PathBuf::from("data").join(&account.name),
        listen: account.listen,
        bootstrap: account.bootstrap,
        relays: Vec::new(),
        public: false,
    });
    config.save()?;
    Ok(address)
}

/// Opens an account's key file: its secret key.
pub fn unlock(
    config: &DaemonConfig,
    account: &AccountConfig,
    passwords: &PasswordSource,
) -> Result<SecretKey, AccountError> {
    let file = KeyFile::read(&config.resolve(&account.keystore))?;
    let source = PasswordSource {
        file: passwords.file.clone(),
        account_file: account.password_file.as_ref().map(|p| config.resolve(p)),
    };
    let password = source.existing(&format!("account {:?} ({})", account.name, account.address))?;
    let key = keystore::decrypt(&file, password.as_bytes())?;
    let signer = LocalSigner::from_bytes(key.expose()).map_err(|_| keystore::KeystoreError::InvalidKey)?;
    if signer.address() != account.address {
        return Err(AccountError::Refused(format!(
            "the key file of account {:?} holds {}, the configuration says {}",
            account.name,
            signer.address(),
            account.address
        )));
    }
    Ok(key)
}
