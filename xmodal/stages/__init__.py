"""Training stages (Ray Train): image_pretrain, ecg_ssl, align, finetune — cached by key."""
